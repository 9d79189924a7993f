//! Config value types that read `${VAR}` from the environment while deserialising.
//!
//! Expanding inside the deserializer (instead of on the raw text) keeps YAML structure safe from whatever a
//! variable contains, and lets serde_yaml report a missing variable with its key path and line.

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// Replaces `${VAR}` and `${VAR:-default}` with the environment's values. `$${` writes a literal `${`.
pub fn expand_env(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(stripped) = after.strip_prefix("${") {
            out.push_str("${");
            rest = stripped;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| format!("unclosed `${{` in `{text}`"))?;
            let inner = &body[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("`${{{inner}}}` is not a valid variable name"));
            }
            match (lookup(name), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => return Err(format!("environment variable {name} is not set")),
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn from_process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// A string, or anything parsed from one, with `${VAR}` expanded first.
#[derive(Clone, PartialEq, Eq)]
pub struct Env<T>(pub T);

impl<T: fmt::Debug> fmt::Debug for Env<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de, T> Deserialize<'de> for Env<T>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<T> Visitor<'_> for V<T>
        where
            T: FromStr,
            T::Err: fmt::Display,
        {
            type Value = Env<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                let expanded = expand_env(v, &from_process_env).map_err(E::custom)?;
                expanded.parse().map(Env).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                self.visit_str(&v.to_string())
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// A secret string: expanded from the environment like [`Env`], never printed by `Debug`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct Secret(Env<String>);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0 .0
    }

    pub fn new(value: impl Into<String>) -> Self {
        Secret(Env(value.into()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A duration written the human way: `90s`, `5m`, `1h 30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl FromStr for HumanDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        humantime::parse_duration(s.trim())
            .map(HumanDuration)
            .map_err(|e| format!("`{s}` is not a duration like 30s, 5m or 1h: {e}"))
    }
}

/// A size in bytes: `1048576`, `512KiB`, `1MiB`, `2MB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: u64 = num
            .parse()
            .map_err(|_| format!("`{s}` is not a size like 1MiB or 65536"))?;
        let mult = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "kib" | "k" => 1 << 10,
            "mib" | "m" => 1 << 20,
            "gib" | "g" => 1 << 30,
            "kb" => 1_000,
            "mb" => 1_000_000,
            "gb" => 1_000_000_000,
            other => return Err(format!("unknown size unit `{other}` in `{s}`")),
        };
        Ok(ByteSize(n.saturating_mul(mult)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TOKEN" => Some("s3cret".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_variables() {
        assert_eq!(
            expand_env("Bearer ${TOKEN}", &env).unwrap(),
            "Bearer s3cret"
        );
        assert_eq!(expand_env("${EMPTY}x", &env).unwrap(), "x");
        assert_eq!(expand_env("${NOPE:-dflt}", &env).unwrap(), "dflt");
        assert_eq!(
            expand_env("cost $5 $${TOKEN}", &env).unwrap(),
            "cost $5 ${TOKEN}"
        );
    }

    #[test]
    fn missing_variable_is_an_error() {
        let err = expand_env("${NOPE}", &env).unwrap_err();
        assert_eq!(err, "environment variable NOPE is not set");
        assert!(expand_env("${bad-name}", &env).is_err());
        assert!(expand_env("${TOKEN", &env).is_err());
    }

    #[test]
    fn parses_sizes_and_durations() {
        assert_eq!("1MiB".parse::<ByteSize>().unwrap().0, 1 << 20);
        assert_eq!("65536".parse::<ByteSize>().unwrap().0, 65536);
        assert!("1 parsec".parse::<ByteSize>().is_err());
        assert_eq!(
            "1h".parse::<HumanDuration>().unwrap().0,
            Duration::from_secs(3600)
        );
        assert!("soon".parse::<HumanDuration>().is_err());
    }
}
