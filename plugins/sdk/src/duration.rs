//! Parses config durations such as `30s`, `5m`, `1h30m`.

/// Parses a duration into milliseconds: one or more `<integer><unit>` parts with unit `ms`, `s`,
/// `m`, `h` or `d` (`90s`, `5m`, `1h30m`); whitespace around it is ignored. A bare `0` is zero.
pub fn parse_duration_ms(text: &str) -> Result<u64, String> {
    let s = text.trim();
    if s == "0" {
        return Ok(0);
    }
    let bad = || format!("invalid duration {text:?} (want e.g. 30s, 5m, 1h30m)");
    let mut rest = s;
    let mut total: u64 = 0;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let per_unit = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total = n
            .checked_mul(per_unit)
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(bad)?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::parse_duration_ms as p;

    #[test]
    fn parses() {
        assert_eq!(p("5m"), Ok(300_000));
        assert_eq!(p(" 1h30m "), Ok(5_400_000));
        assert_eq!(p("250ms"), Ok(250));
        assert_eq!(p("0"), Ok(0));
        assert_eq!(p("2d"), Ok(172_800_000));
        for bad in ["", "5", "m", "5x", "1.5h", "-5m", "5m junk"] {
            assert!(p(bad).is_err(), "{bad}");
        }
    }
}
