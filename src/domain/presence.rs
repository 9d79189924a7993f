//! Presence: whether a member is around to read a mention, as reported by each source (tocsin's web UI,
//! the API, chat platforms), and the one state those reports add up to. Pure.

use serde::{Deserialize, Serialize};

use super::time::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PresenceState {
    Online,
    Away,
    Dnd,
    Offline,
}

impl PresenceState {
    pub fn as_str(self) -> &'static str {
        match self {
            PresenceState::Online => "online",
            PresenceState::Away => "away",
            PresenceState::Dnd => "dnd",
            PresenceState::Offline => "offline",
        }
    }

    pub fn from_name(name: &str) -> Option<PresenceState> {
        [Self::Online, Self::Away, Self::Dnd, Self::Offline]
            .into_iter()
            .find(|s| s.as_str() == name)
    }

    /// How present: a member online anywhere is online; do-not-disturb beats away, which beats offline.
    fn rank(self) -> u8 {
        match self {
            PresenceState::Online => 3,
            PresenceState::Dnd => 2,
            PresenceState::Away => 1,
            PresenceState::Offline => 0,
        }
    }
}

/// One source's latest report about a member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    pub state: PresenceState,
    /// When this state was reported.
    pub since: Timestamp,
    /// `api`, `web`, `matrix`, ... or `none` when nothing is known.
    pub source: String,
}

/// What the reports add up to: the most present state any source reports, the latest report among
/// equals. No report at all means offline.
pub fn effective(reports: &[Presence]) -> Presence {
    reports
        .iter()
        .max_by_key(|p| (p.state.rank(), p.since))
        .cloned()
        .unwrap_or(Presence {
            state: PresenceState::Offline,
            since: Timestamp::from_millis(0),
            source: "none".into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(state: PresenceState, at: i64, source: &str) -> Presence {
        Presence {
            state,
            since: Timestamp::from_millis(at),
            source: source.into(),
        }
    }

    #[test]
    fn nothing_known_is_offline() {
        let e = effective(&[]);
        assert_eq!(
            (e.state, e.source.as_str()),
            (PresenceState::Offline, "none")
        );
    }

    #[test]
    fn online_anywhere_is_online() {
        let e = effective(&[
            p(PresenceState::Offline, 5, "matrix"),
            p(PresenceState::Online, 1, "web"),
            p(PresenceState::Away, 9, "api"),
        ]);
        assert_eq!((e.state, e.source.as_str()), (PresenceState::Online, "web"));
    }

    proptest! {
        #[test]
        fn the_result_is_one_of_the_reports_and_none_is_more_present(
            reports in proptest::collection::vec((0u8..4, 0i64..100), 1..8)
        ) {
            let states = [PresenceState::Online, PresenceState::Away, PresenceState::Dnd, PresenceState::Offline];
            let reports: Vec<Presence> = reports.iter().enumerate()
                .map(|(i, (s, at))| p(states[*s as usize], *at, &format!("s{i}"))).collect();
            let e = effective(&reports);
            prop_assert!(reports.contains(&e));
            prop_assert!(reports.iter().all(|r| r.state.rank() <= e.state.rank()));
        }
    }
}
