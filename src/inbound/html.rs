//! HTML to plain text for replies from clients that send HTML only (Outlook, some webmails).
//!
//! Our own small converter rather than mail-parser's: we must drop `<blockquote>` contents, because
//! that is where HTML clients put the quoted original, and the quote-stripping in `domain::reply`
//! only sees `>` markers in plain text. It runs in time linear in its input (it never rescans what
//! it passed; a reply is untrusted input), and it looks at no more than [`MAX_HTML`] bytes.

/// The most HTML converted: what a person typed on top of a reply comes first, and anything after
/// this many bytes is dropped (cut at a character boundary).
pub const MAX_HTML: usize = 1 << 20;

/// Elements whose content is never text a person wrote.
const HIDDEN: &[&str] = &["head", "style", "script", "title", "template"];

/// Elements whose content is raw text, not markup.
const RAW_TEXT: &[&str] = &["style", "script"];

/// Elements that start and end a line.
const BLOCKS: &[&str] = &[
    "p",
    "div",
    "tr",
    "li",
    "ul",
    "ol",
    "dl",
    "dt",
    "dd",
    "table",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "pre",
    "section",
    "article",
    "header",
    "footer",
    "center",
    "address",
    "blockquote",
];

/// HTML to plain text: tags dropped, entities decoded, whitespace collapsed as a browser would, line
/// breaks for `<br>` and block elements, `<blockquote>` (the quoted mail), `<head>`, `<style>` and
/// `<script>` dropped with their contents. Never fails: malformed HTML degrades to text.
pub(crate) fn html_to_text(html: &str) -> String {
    let mut cut = html.len().min(MAX_HTML);
    while !html.is_char_boundary(cut) {
        cut -= 1;
    }
    let html = html[..cut].replace("\r\n", "\n");
    let mut out = Output::default();
    let mut hidden = 0usize;
    let mut quoted = 0usize;
    let mut pre = 0usize;
    let mut rest = html.as_str();
    while let Some(first) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix("<!--") {
            // Comments, including Outlook's `<!--[if mso]>…<![endif]-->` blocks.
            rest = after.find("-->").map_or("", |i| &after[i + 3..]);
            continue;
        }
        if first == '<' {
            if let Some((tag, after)) = parse_tag(rest) {
                rest = after;
                let name = tag.name.as_str();
                if HIDDEN.contains(&name) {
                    hidden = step(hidden, tag.closing);
                    if !tag.closing && RAW_TEXT.contains(&name) {
                        // Script and style contents are not markup ("a<b" in a script opens no
                        // tag): jump to their end tag. The search must not copy or lowercase the
                        // rest: once per tag, that was quadratic.
                        let end = find_end_tag(rest, name);
                        rest = end.map_or("", |i| &rest[i..]);
                    }
                } else if name == "blockquote" {
                    quoted = step(quoted, tag.closing);
                }
                if name == "pre" {
                    pre = step(pre, tag.closing);
                }
                if hidden == 0 && quoted == 0 {
                    if name == "br" {
                        out.newline();
                    } else if BLOCKS.contains(&name) {
                        out.end_line();
                    } else if name == "td" || name == "th" {
                        out.space();
                    }
                }
                continue;
            }
        }
        // Text up to the next '<' (a '<' that did not start a tag is text too).
        let from = first.len_utf8();
        let end = rest[from..].find('<').map_or(rest.len(), |i| i + from);
        let (run, after) = rest.split_at(end);
        if hidden == 0 && quoted == 0 {
            out.text(&decode_entities(run), pre > 0);
        }
        rest = after;
    }
    out.finish()
}

/// Where `</name` first starts in `s`, ignoring ASCII case; a byte index at a '<', so a char boundary.
fn find_end_tag(s: &str, name: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let name = name.as_bytes();
    let mut from = 0;
    while let Some(i) = bytes[from..].iter().position(|&b| b == b'<') {
        let at = from + i;
        let after = &bytes[at + 1..];
        if after.first() == Some(&b'/')
            && after.len() > name.len()
            && after[1..=name.len()].eq_ignore_ascii_case(name)
        {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

fn step(depth: usize, closing: bool) -> usize {
    if closing {
        depth.saturating_sub(1)
    } else {
        depth.saturating_add(1)
    }
}

struct Tag {
    /// Lowercased; empty for declarations (`<!DOCTYPE …>`, `<?xml …?>`).
    name: String,
    closing: bool,
}

/// Parses the tag at the start of `s` (which starts with '<'); returns it and the text after it.
/// `None` when the '<' does not open a tag (e.g. "a < b").
fn parse_tag(s: &str) -> Option<(Tag, &str)> {
    let body = &s[1..];
    let (closing, body) = match body.strip_prefix('/') {
        Some(b) => (true, b),
        None => (false, body),
    };
    let first = body.chars().next()?;
    let name = if first == '!' || first == '?' {
        String::new()
    } else if first.is_ascii_alphabetic() {
        body.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == ':' || *c == '-')
            .collect::<String>()
            .to_ascii_lowercase()
    } else {
        return None;
    };
    // Find the closing '>', skipping quoted attribute values (which may contain '>').
    let mut quote: Option<u8> = None;
    for (i, b) in body.bytes().enumerate() {
        match (quote, b) {
            (Some(q), _) if b == q => quote = None,
            (Some(_), _) => {}
            (None, b'"' | b'\'') if !name.is_empty() => quote = Some(b),
            (None, b'>') => return Some((Tag { name, closing }, &body[i + 1..])),
            _ => {}
        }
    }
    // Unterminated tag: the rest is inside it.
    Some((Tag { name, closing }, ""))
}

/// Accumulates text with HTML whitespace rules.
#[derive(Default)]
struct Output {
    text: String,
    /// Whitespace was seen since the last character written.
    pending_space: bool,
}

impl Output {
    fn text(&mut self, run: &str, pre: bool) {
        for c in run.chars() {
            if pre {
                self.text.push(if c == '\u{a0}' { ' ' } else { c });
                continue;
            }
            if c.is_whitespace() && c != '\u{a0}' {
                self.pending_space = true;
                continue;
            }
            if self.pending_space && !self.text.is_empty() && !self.text.ends_with('\n') {
                self.text.push(' ');
            }
            self.pending_space = false;
            // A non-breaking space is a space that does not collapse.
            self.text.push(if c == '\u{a0}' { ' ' } else { c });
        }
    }

    fn space(&mut self) {
        self.pending_space = true;
    }

    fn newline(&mut self) {
        self.text.push('\n');
        self.pending_space = false;
    }

    fn end_line(&mut self) {
        if !self.text.is_empty() && !self.text.ends_with('\n') {
            self.text.push('\n');
        }
        self.pending_space = false;
    }

    /// Trailing spaces off every line, at most one blank line in a row, no blank lines at the ends.
    fn finish(self) -> String {
        let mut result = String::with_capacity(self.text.len());
        let mut blank_run = 0;
        for line in self.text.split('\n') {
            let line = line.trim_end();
            if line.is_empty() {
                blank_run += 1;
                if blank_run > 1 || result.is_empty() {
                    continue;
                }
            } else {
                blank_run = 0;
            }
            result.push_str(line);
            result.push('\n');
        }
        let trimmed = result.trim_end_matches('\n').len();
        result.truncate(trimmed);
        result
    }
}

/// Decodes character references: numeric (`&#39;`, `&#x27;`) and the named ones mail clients use.
/// Anything unrecognised is left as written.
fn decode_entities(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains('&') {
        return s.into();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        // References are short; don't scan far for a ';' that belongs to something else.
        let mut end = rest.len().min(33);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let window = &rest[1..end];
        let decoded = window.find(';').and_then(|semi| {
            let name = &rest[1..1 + semi];
            entity(name).map(|c| (c, semi + 2))
        });
        match decoded {
            Some((c, len)) => {
                out.extend(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out.into()
}

/// The character(s) a reference stands for (`None` when unknown). Soft hyphens and zero-width
/// joiners decode to nothing.
fn entity(name: &str) -> Option<Option<char>> {
    if let Some(number) = name.strip_prefix('#') {
        let code = match number.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => number.parse::<u32>().ok()?,
        };
        let c = match code {
            0 => '\u{fffd}',
            _ => char::from_u32(code).unwrap_or('\u{fffd}'),
        };
        return Some(Some(c));
    }
    let c = match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => '\u{a0}',
        "ensp" | "emsp" | "thinsp" => ' ',
        "shy" | "zwnj" | "zwj" | "lrm" | "rlm" => return Some(None),
        "ndash" => '–',
        "mdash" => '—',
        "hellip" => '…',
        "lsquo" => '‘',
        "rsquo" => '’',
        "sbquo" => '‚',
        "ldquo" => '“',
        "rdquo" => '”',
        "bdquo" => '„',
        "laquo" => '«',
        "raquo" => '»',
        "bull" => '•',
        "middot" => '·',
        "copy" => '©',
        "reg" => '®',
        "trade" => '™',
        "euro" => '€',
        "pound" => '£',
        "yen" => '¥',
        "cent" => '¢',
        "deg" => '°',
        "times" => '×',
        "divide" => '÷',
        "plusmn" => '±',
        "sect" => '§',
        "para" => '¶',
        "iexcl" => '¡',
        "iquest" => '¿',
        "agrave" => 'à',
        "aacute" => 'á',
        "acirc" => 'â',
        "auml" => 'ä',
        "aring" => 'å',
        "aelig" => 'æ',
        "ccedil" => 'ç',
        "egrave" => 'è',
        "eacute" => 'é',
        "ecirc" => 'ê',
        "euml" => 'ë',
        "igrave" => 'ì',
        "iacute" => 'í',
        "icirc" => 'î',
        "iuml" => 'ï',
        "ntilde" => 'ñ',
        "ograve" => 'ò',
        "oacute" => 'ó',
        "ocirc" => 'ô',
        "ouml" => 'ö',
        "oslash" => 'ø',
        "ugrave" => 'ù',
        "uacute" => 'ú',
        "ucirc" => 'û',
        "uuml" => 'ü',
        "yacute" => 'ý',
        "yuml" => 'ÿ',
        "szlig" => 'ß',
        "Agrave" => 'À',
        "Aacute" => 'Á',
        "Acirc" => 'Â',
        "Auml" => 'Ä',
        "Aring" => 'Å',
        "Ccedil" => 'Ç',
        "Egrave" => 'È',
        "Eacute" => 'É',
        "Ecirc" => 'Ê',
        "Ouml" => 'Ö',
        "Uuml" => 'Ü',
        "Ntilde" => 'Ñ',
        _ => return None,
    };
    Some(Some(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn html_to_text_never_panics(html in "(<[a-z/!]{0,3}|>|&#?[a-z0-9]{0,6};?|\\PC|[ \n])*") {
            let text = html_to_text(&html);
            proptest::prop_assert!(!text.ends_with('\n'));
        }
    }

    #[test]
    fn many_script_tags_take_linear_time_and_big_inputs_are_cut() {
        // 1 MiB of script elements: each one used to copy and lowercase all of the rest, which
        // took seconds in release builds (and minutes in debug ones) for a reply this size.
        let html = format!(
            "{}<p>ok</p>",
            "<script>a</script>".repeat(MAX_HTML / 18 - 1)
        );
        assert_eq!(html_to_text(&html), "ok");
        let unterminated = "<script>".repeat(MAX_HTML / 8);
        assert_eq!(html_to_text(&unterminated), "");
        assert_eq!(html_to_text("<SCRIPT>x</Script >y"), "y");
        // Past the bound, nothing is looked at.
        let big = format!("{}é{}", "a".repeat(MAX_HTML - 1), "b".repeat(100));
        let text = html_to_text(&big);
        assert_eq!(text.len(), MAX_HTML - 1);
        assert!(text.bytes().all(|b| b == b'a'));
    }

    #[test]
    fn html_conversion() {
        assert_eq!(html_to_text("a<br>b<br/>c<BR />d"), "a\nb\nc\nd");
        assert_eq!(html_to_text("<p>one</p><p>two</p>"), "one\ntwo");
        assert_eq!(
            html_to_text("<div>x</div><div><br></div><div>y</div>"),
            "x\n\ny"
        );
        assert_eq!(
            html_to_text("  lots   of\n  space  &nbsp;here "),
            "lots of space  here"
        );
        assert_eq!(
            html_to_text(
                "keep<blockquote>drop <blockquote>this</blockquote> too</blockquote>after"
            ),
            "keep\nafter"
        );
        assert_eq!(
            html_to_text(
                "<a href=\"x?a=1&amp;b=>\">link</a> &lt;tag&gt; &#x263A; &#9731; &bogus; & a < b"
            ),
            "link <tag> ☺ ☃ &bogus; & a < b"
        );
        assert_eq!(
            html_to_text("<style>p{}</style><script>x<y</script>ok"),
            "ok"
        );
        assert_eq!(html_to_text("<pre>a  b\n  c</pre>"), "a  b\n  c");
        assert_eq!(html_to_text("a<!-- hidden -->b<!-- unterminated"), "ab");
        assert_eq!(html_to_text("x<img src=\"a.png\" alt=\"y\"/>z"), "xz");
        assert_eq!(html_to_text("tail <b"), "tail");
        assert_eq!(
            html_to_text("é<ü>&#0;&#xD800;&#99999999999;"),
            "é<ü>\u{fffd}\u{fffd}&#99999999999;"
        );
    }
}
