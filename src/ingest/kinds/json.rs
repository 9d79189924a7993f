//! Reading senders' JSON the way several parsers in `ingest::kinds` all do: the body itself, a scalar
//! as text, a non-blank string at a path, epoch milliseconds, ISO 8601 times whose offset has no colon,
//! and label maps that keep every value of a name seen twice.
//!
//! Only what is the same for every parser that uses it lives here; a parser's own rules (Datadog's
//! unfilled `$VARIABLES`, Zabbix's unresolved macros) stay in the parser, as filters on these.

use serde_json::Value;

use crate::domain::alert::Labels;
use crate::domain::time::Timestamp;

/// The body as JSON, or `malformed JSON: …`: `ingest::parse`'s reading, the same for every kind.
pub(crate) use crate::ingest::parse::json as read;

/// A string, number or boolean as text (strings trimmed); blank strings, `null`, arrays and objects
/// are nothing.
pub(crate) fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// [`scalar`] of a field that may be missing.
pub(crate) fn text(value: Option<&Value>) -> Option<String> {
    value.and_then(scalar)
}

/// A non-blank string at `path` (trimmed); anything else there, or nothing, is `None`.
pub(crate) fn str_at<'v>(v: &'v Value, path: &[&str]) -> Option<&'v str> {
    path.iter()
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// Epoch milliseconds, as a number or a string. Nonsense (zero, negative, past year 5000) is dropped.
pub(crate) fn epoch_ms(value: Option<&Value>) -> Option<Timestamp> {
    let ms = match value? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    }?;
    (1..100_000_000_000_000)
        .contains(&ms)
        .then(|| Timestamp::from_millis(ms))
}

/// RFC 3339, or ISO 8601 with an offset written without its colon (`2015-07-17T08:42:58.315+0000`, as
/// PagerDuty's and CloudWatch's examples have it). A time that still cannot be read is `None`: senders'
/// times are cosmetic enough that losing the alert over one would be worse.
pub(crate) fn offset_time(text: &str) -> Option<Timestamp> {
    let text = text.trim();
    if let Ok(t) = Timestamp::parse_optional(text) {
        return t;
    }
    let bytes = text.as_bytes();
    let n = bytes.len();
    if n > 5 && matches!(bytes[n - 5], b'+' | b'-') && bytes[n - 4..].iter().all(u8::is_ascii_digit)
    {
        let fixed = format!("{}:{}", &text[..n - 2], &text[n - 2..]);
        return Timestamp::parse_optional(&fixed).ok().flatten();
    }
    None
}

/// Sets `name` to `value` when there is a value.
pub(crate) fn insert(map: &mut Labels, name: &str, value: Option<String>) {
    if let Some(v) = value {
        map.insert(name.to_string(), v);
    }
}

/// Adds `value` under `name`; a name seen twice keeps both values, comma-separated (once each).
pub(crate) fn add_value(labels: &mut Labels, name: &str, value: &str) {
    labels
        .entry(name.to_string())
        .and_modify(|v| {
            if !v.split(',').any(|x| x == value) {
                v.push(',');
                v.push_str(value);
            }
        })
        .or_insert_with(|| value.to_string());
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn scalars_and_strings() {
        assert_eq!(scalar(&json!(" a ")), Some("a".into()));
        assert_eq!(scalar(&json!(7)), Some("7".into()));
        assert_eq!(scalar(&json!(false)), Some("false".into()));
        for nothing in [json!(" "), json!(null), json!([1]), json!({"a": 1})] {
            assert_eq!(scalar(&nothing), None);
        }
        assert_eq!(text(None), None);
        let v = json!({"a": {"b": " x "}, "n": 1});
        assert_eq!(str_at(&v, &["a", "b"]), Some("x"));
        assert_eq!(str_at(&v, &["n"]), None);
        assert_eq!(str_at(&v, &["a", "c"]), None);
    }

    #[test]
    fn times() {
        assert_eq!(
            epoch_ms(Some(&json!(1000))),
            Some(Timestamp::from_millis(1000))
        );
        assert_eq!(
            epoch_ms(Some(&json!(" 1000 "))),
            Some(Timestamp::from_millis(1000))
        );
        assert_eq!(epoch_ms(Some(&json!(0))), None);
        assert_eq!(epoch_ms(Some(&json!(1.5))), None);
        assert_eq!(
            offset_time(" 2015-07-17T08:42:58.315+0000 "),
            Timestamp::parse_optional("2015-07-17T08:42:58.315Z").unwrap()
        );
        assert_eq!(offset_time("0001-01-01T00:00:00+0000"), None);
        assert_eq!(offset_time("+0000"), None);
    }

    #[test]
    fn label_values() {
        let mut l = Labels::new();
        insert(&mut l, "a", None);
        insert(&mut l, "b", Some("1".into()));
        add_value(&mut l, "b", "2");
        add_value(&mut l, "b", "1");
        add_value(&mut l, "c", "3");
        assert_eq!(l.len(), 2);
        assert_eq!(l["b"], "1,2");
        assert_eq!(l["c"], "3");
    }
}
