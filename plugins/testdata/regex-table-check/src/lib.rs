//! regex-table-check: runs one row of plugins/testdata/regex-table.json through the SDK's `Matcher`,
//! for tocsin's tests/plugin_regex.rs. Labels `pattern` and `input` in; the decision says
//! `drop("match")`, `drop("no match")` or `drop("invalid")`.

use tocsin_plugin_sdk::prelude::*;

struct RegexTableCheck;

impl Plugin for RegexTableCheck {
    fn handle(ev: &Event) -> Result<Decision, String> {
        let pattern = ev.label("pattern").ok_or("no pattern label")?;
        let input = ev.label_or_empty("input");
        // Written as an author would, in matcher syntax with the value quoted, so the table also
        // covers the matcher's unquoting.
        let quoted = pattern.replace('\\', "\\\\").replace('"', "\\\"");
        let (re, not_re) = match (
            Matcher::parse(&format!("input=~\"{quoted}\"")),
            Matcher::parse(&format!("input!~\"{quoted}\"")),
        ) {
            (Ok(re), Ok(not_re)) => (re, not_re),
            (Err(_), Err(_)) => return Ok(Decision::drop("invalid")),
            _ => return Err("=~ and !~ disagree on whether the pattern is valid".into()),
        };
        if re.value != pattern {
            return Err(format!("quoting changed the pattern to {:?}", re.value));
        }
        let hit = re.matches_value(Some(input));
        if hit == not_re.matches_value(Some(input)) {
            return Err("=~ and !~ gave the same answer".into());
        }
        Ok(Decision::drop(if hit { "match" } else { "no match" }))
    }
}

export_plugin!(RegexTableCheck);
