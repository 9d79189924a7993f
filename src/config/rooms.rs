//! `rooms:` (chat destinations) and `routes:` (which tickets go where), and their validation.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::values::{Env, HumanDuration, Secret};
use crate::domain::hours::{self, Hours, OffHours, RoomHours};

/// `rooms.<name>`: one chat destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomConfig {
    pub sink: SinkConfig,
    /// Members of the room (`members.<name>`): who `all` means, and who gets email copies.
    #[serde(default)]
    pub members: Vec<String>,
    /// Messages per second with a burst; defaults per platform (see [`SinkConfig::default_rate`]).
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
    #[serde(default)]
    pub digest: DigestConfig,
    /// How long tocsin keeps retrying a message before it marks it dead.
    #[serde(default = "default_max_age")]
    pub max_age: Env<HumanDuration>,
    /// Business hours, and what the room does outside them. Without it the room is always open.
    #[serde(default)]
    pub hours: Option<HoursConfig>,
}

/// `rooms.<name>.hours`: when the room's people are there.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoursConfig {
    /// `mon` ... `sun` (or full names).
    pub days: Vec<String>,
    /// `HH:MM`, local time.
    pub start: String,
    /// `HH:MM`, local time; `24:00` is midnight. Not after `start`: the window runs overnight.
    pub end: String,
    /// An IANA time zone, like `Europe/Berlin` or `UTC`.
    pub timezone: String,
    #[serde(default)]
    pub off_hours: OffHoursConfig,
}

/// `rooms.<name>.hours.off_hours`: `notice`, `hold` or `{route: <room>}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum OffHoursConfig {
    /// Deliver as usual, plus one notice per off-hours period saying when the team is back.
    #[default]
    Notice,
    /// Critical tickets go out now; others wait until the hours start.
    Hold,
    /// Deliver to this other room instead.
    Route(String),
}

impl<'de> Deserialize<'de> for OffHoursConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        const EXPECTED: &str = "notice, hold or {route: <room>}";
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = OffHoursConfig;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(EXPECTED)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                match v {
                    "notice" => Ok(OffHoursConfig::Notice),
                    "hold" => Ok(OffHoursConfig::Hold),
                    other => Err(E::custom(format!(
                        "unknown variant `{other}`, expected {EXPECTED}"
                    ))),
                }
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                use serde::de::Error;
                let Some(key) = map.next_key::<String>()? else {
                    return Err(A::Error::custom(format!("expected {EXPECTED}")));
                };
                if key != "route" {
                    return Err(A::Error::custom(format!(
                        "unknown field `{key}`, expected {EXPECTED}"
                    )));
                }
                let room: String = map.next_value()?;
                if let Some(extra) = map.next_key::<String>()? {
                    return Err(A::Error::custom(format!(
                        "unknown field `{extra}`: route takes only the room"
                    )));
                }
                Ok(OffHoursConfig::Route(room))
            }
        }
        d.deserialize_any(V)
    }
}

impl RoomConfig {
    /// The room's hours for routing; `None` without `hours:` (or, never after validation, invalid ones).
    pub fn room_hours(&self) -> Option<RoomHours> {
        let h = self.hours.as_ref()?;
        let days: Option<Vec<usize>> = h.days.iter().map(|d| hours::parse_day(d)).collect();
        let hours = Hours::new(
            &days?,
            hours::parse_time(&h.start, false)?,
            hours::parse_time(&h.end, true)?,
            &h.timezone,
        )
        .ok()?;
        let off_hours = match &h.off_hours {
            OffHoursConfig::Notice => OffHours::Notice,
            OffHoursConfig::Hold => OffHours::Hold,
            OffHoursConfig::Route(to) => OffHours::Route(to.clone()),
        };
        Some(RoomHours { hours, off_hours })
    }

    /// Problems with `hours:`, as (key under the room, message). `rooms` are all declared rooms, which
    /// `route` must name (and not this room, `name`).
    pub fn hours_problems(
        &self,
        name: &str,
        rooms: &BTreeMap<String, RoomConfig>,
    ) -> Vec<(&'static str, String)> {
        let Some(h) = &self.hours else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if h.days.is_empty() {
            out.push((
                "hours.days",
                "list at least one day, like [mon, tue, wed, thu, fri]".into(),
            ));
        }
        for (i, d) in h.days.iter().enumerate() {
            if hours::parse_day(d).is_none() {
                out.push((
                    "hours.days",
                    format!(
                        "days[{i}] `{d}` is not a day: use mon, tue, wed, thu, fri, sat or sun"
                    ),
                ));
            }
        }
        let start = hours::parse_time(&h.start, false);
        if start.is_none() {
            out.push((
                "hours.start",
                format!("`{}` is not a time like 09:00 (00:00 to 23:59)", h.start),
            ));
        }
        let end = hours::parse_time(&h.end, true);
        if end.is_none() || end == Some(0) {
            out.push((
                "hours.end",
                format!("`{}` is not a time like 17:30 (00:01 to 24:00)", h.end),
            ));
        }
        if let (Some(s), Some(e)) = (start, end) {
            if s == e {
                out.push((
                    "hours.end",
                    "is the same as start: the room would never be open (an end before the start runs overnight)"
                        .into(),
                ));
            }
        }
        if !hours::known_timezone(&h.timezone) {
            out.push((
                "hours.timezone",
                format!(
                    "`{}` is not a known time zone: use an IANA name like Europe/Berlin or UTC",
                    h.timezone
                ),
            ));
        }
        if let OffHoursConfig::Route(to) = &h.off_hours {
            if to == name {
                out.push((
                    "hours.off_hours.route",
                    format!("`{to}` is this room itself: name another room"),
                ));
            } else if !rooms.contains_key(to) {
                out.push((
                    "hours.off_hours.route",
                    format!("`{to}` is not declared under rooms:"),
                ));
            }
        }
        out
    }
}

fn default_max_age() -> Env<HumanDuration> {
    Env(HumanDuration(Duration::from_secs(24 * 3600)))
}

/// `rate_limit: {per_second: 1, burst: 5}`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    pub per_second: f64,
    #[serde(default = "default_burst")]
    pub burst: u32,
}

fn default_burst() -> u32 {
    1
}

/// `rooms.<name>.digest`: when a storm turns a room's messages into digests.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DigestConfig {
    /// The room switches to digests when its backlog would take longer than this to send at its rate.
    #[serde(default = "default_digest_after")]
    pub after: Env<HumanDuration>,
    /// At most one digest per this interval (and never faster than the room's rate).
    #[serde(default = "default_digest_interval")]
    pub interval: Env<HumanDuration>,
    /// Tickets listed by name in a digest; the rest are counted as "+N more".
    #[serde(default = "default_digest_top")]
    pub top: usize,
}

impl Default for DigestConfig {
    fn default() -> Self {
        DigestConfig {
            after: default_digest_after(),
            interval: default_digest_interval(),
            top: default_digest_top(),
        }
    }
}

fn default_digest_after() -> Env<HumanDuration> {
    Env(HumanDuration(Duration::from_secs(30)))
}

fn default_digest_interval() -> Env<HumanDuration> {
    Env(HumanDuration(Duration::from_secs(10)))
}

fn default_digest_top() -> usize {
    10
}

/// `rooms.<name>.sink`, chosen by `kind`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SinkConfig {
    Webhook(WebhookSinkConfig),
    Slack(SlackSinkConfig),
    Mattermost(MattermostSinkConfig),
    Teams(TeamsSinkConfig),
    Discord(DiscordSinkConfig),
    Matrix(MatrixSinkConfig),
}

impl SinkConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            SinkConfig::Webhook(_) => "webhook",
            SinkConfig::Slack(_) => "slack",
            SinkConfig::Mattermost(_) => "mattermost",
            SinkConfig::Teams(_) => "teams",
            SinkConfig::Discord(_) => "discord",
            SinkConfig::Matrix(_) => "matrix",
        }
    }

    /// The platform's documented pace, used when a room sets no `rate_limit`.
    pub fn default_rate(&self) -> RateLimitConfig {
        let (per_second, burst) = match self {
            // Slack: about one message per second per channel, short bursts tolerated.
            SinkConfig::Slack(_) => (1.0, 5),
            // Teams: the connector rule was "more than 4 requests per second is throttled".
            SinkConfig::Teams(_) => (4.0, 4),
            // Discord: buckets come in headers; this is the commonly quoted per-webhook pace.
            SinkConfig::Discord(_) => (0.5, 5),
            // Synapse's default rc_message is 0.2/s with a burst of 10, per user.
            SinkConfig::Matrix(_) => (0.2, 10),
            // Mattermost's server limiter is off by default; 10/s burst 100 when on.
            SinkConfig::Mattermost(_) => (10.0, 100),
            SinkConfig::Webhook(_) => (100.0, 100),
        };
        RateLimitConfig { per_second, burst }
    }

    pub fn timeout(&self) -> Duration {
        let t = match self {
            SinkConfig::Webhook(c) => &c.timeout,
            SinkConfig::Slack(c) => &c.timeout,
            SinkConfig::Mattermost(c) => &c.timeout,
            SinkConfig::Teams(c) => &c.timeout,
            SinkConfig::Discord(c) => &c.timeout,
            SinkConfig::Matrix(c) => &c.timeout,
        };
        t.as_ref()
            .map(|d| d.0 .0)
            .unwrap_or(Duration::from_secs(10))
    }

    /// Problems with the fields of one sink, as (key under `sink`, message).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let mut url = |key: &'static str, value: &str| {
            if !(value.starts_with("http://") || value.starts_with("https://")) {
                out.push((key, "must be an http(s) URL".to_string()));
            }
        };
        match self {
            SinkConfig::Webhook(c) => url("url", &c.url.0),
            SinkConfig::Slack(c) => {
                if let Some(u) = &c.webhook_url {
                    url("webhook_url", u.expose());
                }
                url("api_url", &c.api_url.0);
                match (&c.webhook_url, &c.token, &c.channel) {
                    (Some(_), None, None) | (None, Some(_), Some(_)) => {}
                    (Some(_), _, _) => out.push((
                        "webhook_url",
                        "use either webhook_url, or token and channel, not both".into(),
                    )),
                    (None, Some(_), None) => out.push((
                        "channel",
                        "is needed with token (a channel ID like C0123ABCD)".into(),
                    )),
                    (None, None, _) => out.push((
                        "webhook_url",
                        "is needed (or token and channel for the Web API)".into(),
                    )),
                }
            }
            SinkConfig::Mattermost(c) => {
                if let Some(u) = &c.webhook_url {
                    url("webhook_url", u.expose());
                }
                if let Some(u) = &c.url {
                    url("url", &u.0);
                }
                match (&c.webhook_url, &c.url, &c.token, &c.channel_id) {
                    (Some(_), None, None, None) | (None, Some(_), Some(_), Some(_)) => {}
                    (Some(_), ..) => out.push((
                        "webhook_url",
                        "use either webhook_url, or url, token and channel_id, not both".into(),
                    )),
                    (None, ..) => out.push((
                        "webhook_url",
                        "is needed (or url, token and channel_id for the REST API)".into(),
                    )),
                }
            }
            SinkConfig::Teams(c) => url("webhook_url", c.webhook_url.expose()),
            SinkConfig::Discord(c) => url("webhook_url", c.webhook_url.expose()),
            SinkConfig::Matrix(c) => {
                url("homeserver", &c.homeserver.0);
                if !c.room_id.0.starts_with('!') {
                    out.push(("room_id", "must be a room ID like !abc:example.org".into()));
                }
            }
        }
        out
    }
}

/// `kind: webhook`: tocsin's own JSON body (documented in the README), signed when `secret` is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSinkConfig {
    pub url: Env<String>,
    /// Signs each body with HMAC-SHA256 in `X-Tocsin-Signature: sha256=<hex>`.
    #[serde(default)]
    pub secret: Option<Secret>,
    /// Extra request headers (an `Authorization` for the receiver, say).
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    #[serde(default)]
    pub timeout: Option<Env<HumanDuration>>,
}

/// `kind: slack`: an incoming webhook (`webhook_url`), or the Web API (`token` + `channel`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackSinkConfig {
    #[serde(default)]
    pub webhook_url: Option<Secret>,
    /// A bot token (`xoxb-...`) for `chat.postMessage` and `chat.update`.
    #[serde(default)]
    pub token: Option<Secret>,
    /// The channel ID (not its name: `chat.update` needs the ID).
    #[serde(default)]
    pub channel: Option<Env<String>>,
    #[serde(default = "default_slack_api")]
    pub api_url: Env<String>,
    #[serde(default)]
    pub timeout: Option<Env<HumanDuration>>,
}

fn default_slack_api() -> Env<String> {
    Env("https://slack.com/api".into())
}

/// `kind: mattermost`: an incoming webhook, or REST API v4 (`url` + `token` + `channel_id`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MattermostSinkConfig {
    #[serde(default)]
    pub webhook_url: Option<Secret>,
    /// The server's base URL, e.g. `https://chat.example.org`.
    #[serde(default)]
    pub url: Option<Env<String>>,
    #[serde(default)]
    pub token: Option<Secret>,
    #[serde(default)]
    pub channel_id: Option<Env<String>>,
    #[serde(default)]
    pub timeout: Option<Env<HumanDuration>>,
}

/// `kind: teams`: a Power Automate Workflows webhook URL.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamsSinkConfig {
    pub webhook_url: Secret,
    #[serde(default)]
    pub timeout: Option<Env<HumanDuration>>,
}

/// `kind: discord`: a channel webhook URL.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscordSinkConfig {
    pub webhook_url: Secret,
    #[serde(default)]
    pub timeout: Option<Env<HumanDuration>>,
}

/// `kind: matrix`: the client-server API as a bot user.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatrixSinkConfig {
    /// The homeserver's base URL, e.g. `https://matrix.example.org`.
    pub homeserver: Env<String>,
    pub access_token: Secret,
    /// The room ID (`!abc:example.org`); the bot must have joined it.
    pub room_id: Env<String>,
    #[serde(default)]
    pub timeout: Option<Env<HumanDuration>>,
}

/// One entry of `routes:`. Routes are tried in order; the first that matches wins unless it says
/// `continue: true`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Label equality. `severity` and `source` match the ticket's own severity and source.
    #[serde(rename = "match", default)]
    pub matchers: BTreeMap<String, Env<String>>,
    /// Label regexes, anchored at both ends like Alertmanager's.
    #[serde(default)]
    pub match_re: BTreeMap<String, Env<String>>,
    #[serde(default)]
    pub rooms: Vec<String>,
    /// Members, `here` or `all`.
    #[serde(default)]
    pub mention: Vec<String>,
    #[serde(rename = "continue", default)]
    pub continue_matching: bool,
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    /// The problems with a config whose room `ops` has `hours: <hours>` (room `oncall` exists too).
    fn problems(hours: &str) -> Vec<String> {
        let yaml = format!(
            "rooms:\n  ops:\n    sink: {{kind: webhook, url: \"http://x.test/hook\"}}\n    hours: {hours}\n  \
             oncall:\n    sink: {{kind: webhook, url: \"http://x.test/other\"}}\n"
        );
        match Config::from_yaml(&yaml, Path::new("tocsin.yaml")) {
            Ok(_) => Vec::new(),
            Err(e) => e
                .problems
                .iter()
                .map(|p| format!("{}: {}", p.path, p.message))
                .collect(),
        }
    }

    fn room(hours: &str) -> RoomConfig {
        let yaml = format!(
            "rooms:\n  ops:\n    sink: {{kind: webhook, url: \"http://x.test/hook\"}}\n    hours: {hours}\n  \
             oncall:\n    sink: {{kind: webhook, url: \"http://x.test/other\"}}\n"
        );
        let mut c = Config::from_yaml(&yaml, Path::new("tocsin.yaml")).unwrap();
        c.rooms.remove("ops").unwrap()
    }

    #[test]
    fn the_three_off_hours_behaviours_parse() {
        let base = "days: [mon, tue, wed, thu, fri], start: \"09:00\", end: \"17:30\", timezone: Europe/Berlin";
        let notice = room(&format!("{{{base}}}")).room_hours().unwrap();
        assert_eq!(notice.off_hours, OffHours::Notice);
        assert_eq!(notice.hours.describe(), "Mon–Fri 09:00–17:30 Europe/Berlin");
        let hold = room(&format!("{{{base}, off_hours: hold}}")).room_hours();
        assert_eq!(hold.unwrap().off_hours, OffHours::Hold);
        let route = room(&format!("{{{base}, off_hours: {{route: oncall}}}}")).room_hours();
        assert_eq!(route.unwrap().off_hours, OffHours::Route("oncall".into()));
        // Overnight windows are allowed.
        let night = room("{days: [sat], start: \"22:00\", end: \"06:00\", timezone: UTC}");
        assert_eq!(
            night.room_hours().unwrap().hours.describe(),
            "Sat 22:00–06:00 UTC"
        );
    }

    #[test]
    fn mistakes_are_named_with_their_key() {
        let p = problems(
            "{days: [mon, funday], start: \"9am\", end: \"25:00\", timezone: Mars/Olympus, off_hours: {route: nowhere}}",
        );
        let want = [
            "rooms.ops.hours.days: days[1] `funday` is not a day",
            "rooms.ops.hours.start: `9am` is not a time",
            "rooms.ops.hours.end: `25:00` is not a time",
            "rooms.ops.hours.timezone: `Mars/Olympus` is not a known time zone",
            "rooms.ops.hours.off_hours.route: `nowhere` is not declared under rooms:",
        ];
        for w in want {
            assert!(p.iter().any(|p| p.starts_with(w)), "{w} not in {p:#?}");
        }
        assert_eq!(p.len(), want.len(), "{p:#?}");

        let p = problems(
            "{days: [], start: \"09:00\", end: \"09:00\", timezone: UTC, off_hours: {route: ops}}",
        );
        assert!(
            p.iter()
                .any(|p| p.starts_with("rooms.ops.hours.days: list at least one day")),
            "{p:#?}"
        );
        assert!(
            p.iter()
                .any(|p| p.starts_with("rooms.ops.hours.end: is the same as start")),
            "{p:#?}"
        );
        assert!(
            p.iter().any(
                |p| p.starts_with("rooms.ops.hours.off_hours.route: `ops` is this room itself")
            ),
            "{p:#?}"
        );

        // Unknown keys and behaviours are refused by the types.
        let p = problems(
            "{days: [mon], start: \"09:00\", end: \"17:00\", timezone: UTC, lunch: \"12:00\"}",
        );
        assert!(
            p.iter().any(|p| p.contains("unknown field `lunch`")),
            "{p:#?}"
        );
        let p = problems(
            "{days: [mon], start: \"09:00\", end: \"17:00\", timezone: UTC, off_hours: panic}",
        );
        assert!(
            p.iter().any(|p| p.contains("unknown variant `panic`")),
            "{p:#?}"
        );
        assert!(
            problems("{days: [mon], start: \"09:00\", end: \"24:00\", timezone: UTC}").is_empty()
        );
    }
}
