//! suppress-noise: drops known noise by label matchers, and holds flapping alerts back until
//! they have been firing for a while.
//!
//! Config:
//! - `drop`: matcher sets separated by `;`, each a comma-separated list of Alertmanager matchers
//!   that must all match, e.g. `alertname="Watchdog"; env=~"dev|test",severity="info"`.
//!   Matching alerts (firing or resolved) are dropped with reason `matched drop rule: <set>`.
//! - `hold_for`: a duration (`90s`, `5m`, `1h`). Unset or `0` turns holding off.
//!
//! Hold state lives in kv under `hold:<source>/<fingerprint>`:
//! - `pending:<since_ms>`: seen firing since `since_ms`, not let through yet. Expires after
//!   4 × `hold_for`, so a flap that stops coming back is forgotten.
//! - `sent:<since_ms>`: let through. Kept for 7 days (refreshed by every firing event), because
//!   forgetting it would swallow the resolve and leave the ticket open.
//!
//! A firing alert passes once it has fired for `hold_for` (measured from the sender's
//! `starts_at` when given, else from when this plugin first saw it); before that it is dropped
//! with a reason starting `held:`. A resolved alert clears the state and passes only if the
//! alert had been let through; otherwise it is dropped as `held: resolved before hold_for elapsed`.
//! Holding only works if the sender repeats firing alerts more often than `hold_for`.

use tocsin_plugin_sdk::prelude::*;

/// How long a let-through alert is remembered without news (so its resolve still passes).
const SENT_TTL_MS: u64 = 7 * 24 * 3_600_000;

struct SuppressNoise;

impl Plugin for SuppressNoise {
    fn handle(ev: &Event) -> Result<Decision, String> {
        // A broken `drop` value is an error, not a silent no-op: tocsin fails open and shows it.
        if let Some(rules) = config("drop") {
            for set in Matchers::parse_sets(&rules)? {
                if set.matches(ev) {
                    return Ok(Decision::drop(format!("matched drop rule: {set}")));
                }
            }
        }
        match config("hold_for") {
            Some(text) => match parse_duration_ms(&text)? {
                0 => Ok(Decision::pass()),
                hold_ms => hold(ev, hold_ms),
            },
            None => Ok(Decision::pass()),
        }
    }
}

/// What the kv store says about an alert.
enum State {
    Unknown,
    Pending(u64),
    Sent(u64),
}

fn read_state(key: &str) -> State {
    let Some(value) = kv::get(key) else {
        return State::Unknown;
    };
    let parse = |since: &str| since.parse::<u64>().ok();
    match value.split_once(':') {
        Some(("pending", since)) => parse(since).map_or(State::Unknown, State::Pending),
        Some(("sent", since)) => parse(since).map_or(State::Unknown, State::Sent),
        // Not ours (or an older format): start over rather than fail every event.
        _ => State::Unknown,
    }
}

fn hold(ev: &Event, hold_ms: u64) -> Result<Decision, String> {
    let key = format!("hold:{}", ev.key());
    let now = now_ms();
    let state = read_state(&key);

    if ev.is_resolved() {
        kv::delete(&key);
        if let State::Sent(_) = state {
            return Ok(Decision::pass());
        }
        if let State::Pending(since) = state {
            let ended = ev.ends_at_ms.unwrap_or(now);
            if ended.saturating_sub(since) >= hold_ms {
                // It did fire for hold_for, but no firing event came after that to let it through.
                log::warn("fired longer than hold_for but was never let through: the sender repeats firing alerts too rarely for this hold_for");
            }
        }
        return Ok(Decision::drop("held: resolved before hold_for elapsed"));
    }

    let since = match state {
        State::Sent(since) => {
            // Already let through: refresh the state's TTL and stay out of the way.
            kv::set(&key, &format!("sent:{since}"), Some(SENT_TTL_MS))?;
            return Ok(Decision::pass());
        }
        State::Pending(since) => since,
        // The sender's start time, if it has one in the past, beats our first sighting: it
        // survives expired state and late starts of tocsin.
        State::Unknown => ev.starts_at_ms.filter(|&s| s <= now).unwrap_or(now),
    };
    let firing_for = now.saturating_sub(since);
    if firing_for >= hold_ms {
        kv::set(&key, &format!("sent:{since}"), Some(SENT_TTL_MS))?;
        Ok(Decision::pass())
    } else {
        kv::set(&key, &format!("pending:{since}"), Some(4 * hold_ms))?;
        Ok(Decision::drop(format!(
            "held: firing for {}s of hold_for {}s",
            firing_for / 1000,
            hold_ms / 1000
        )))
    }
}

export_plugin!(SuppressNoise);
