//! Full-text search on PostgreSQL that finds what FTS5 finds. Text is cut into words where FTS5's
//! `unicode61` tokenizer cuts it (at every character that is not a letter or a digit) and lower-cased,
//! here in Rust, so PostgreSQL's own parser and locale play no part: the index gets a `tsvector`
//! literal of those words with their positions, and a search a `tsquery` literal in which each typed
//! word is its parts in sequence, the last one a prefix, all typed words required. Every lexeme is
//! quoted, so what a person types can never be query syntax.

/// PostgreSQL refuses longer lexemes.
const MAX_LEXEME: usize = 2046;
/// Positions above this are stored as this.
const MAX_POSITION: usize = 16_383;

/// The words of `text`, lower-cased, as FTS5 would see them.
fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty() && w.len() <= MAX_LEXEME)
        .map(str::to_string)
        .collect()
}

fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\\', "\\\\").replace('\'', "''"))
}

/// The `tsvector` literal to index `text` by.
pub fn document(text: &str) -> String {
    words(text)
        .iter()
        .enumerate()
        .map(|(i, w)| format!("{}:{}", quote(w), (i + 1).min(MAX_POSITION)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The `tsquery` literal for what a person typed; `None` when nothing searchable is left.
pub fn query(typed: &str) -> Option<String> {
    let terms: Vec<String> = typed
        .split_whitespace()
        .filter_map(|w| {
            let parts: Vec<String> = words(w).iter().map(|p| quote(p)).collect();
            (!parts.is_empty()).then(|| format!("({}:*)", parts.join(" <-> ")))
        })
        .collect();
    (!terms.is_empty()).then(|| terms.join(" & "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn words_are_cut_where_fts5_cuts_them() {
        assert_eq!(
            document("Disk FULL on db-1.example.com!"),
            "'disk':1 'full':2 'on':3 'db':4 '1':5 'example':6 'com':7"
        );
        assert_eq!(
            query("db-1 Disk"),
            Some("('db' <-> '1':*) & ('disk':*)".into())
        );
        assert_eq!(query("\"it's\" & | !"), Some("('it' <-> 's':*)".into()));
        assert_eq!(query("  -- "), None);
    }

    proptest! {
        /// Whatever is typed, every lexeme in the query is quoted whole.
        #[test]
        fn typed_text_never_becomes_syntax(typed in "\\PC{0,64}") {
            if let Some(q) = query(&typed) {
                for term in q.split(" & ") {
                    let inner = term.strip_prefix('(').and_then(|t| t.strip_suffix(":*)"));
                    prop_assert!(inner.is_some(), "{q}");
                    for lexeme in inner.unwrap().split(" <-> ") {
                        prop_assert!(lexeme.starts_with('\'') && lexeme.ends_with('\''), "{q}");
                        let body = &lexeme[1..lexeme.len() - 1];
                        prop_assert!(!body.replace("''", "").contains('\''), "{q}");
                    }
                }
            }
        }
    }
}
