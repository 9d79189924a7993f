//! Tests of routing: which rooms and mentions a ticket gets, and who is emailed.

use super::*;
use crate::domain::alert::{Alert, Labels, Routing, Status};
use crate::domain::mail::{MailPrefs, NotifyMode};
use crate::domain::presence::PresenceState;
use crate::domain::time::Timestamp;
use proptest::prelude::*;
use std::time::Duration;

const MEMBERS: [&str; 4] = ["alice", "bob", "carol", "dave"];
const STATES: [PresenceState; 4] = [
    PresenceState::Online,
    PresenceState::Away,
    PresenceState::Dnd,
    PresenceState::Offline,
];

/// Room `ops` with alice, bob and carol (dave is in no room); group `db` is alice and dave; every
/// member but carol has an address.
fn router(mention: Vec<String>) -> Router {
    let mut rooms = BTreeMap::new();
    rooms.insert(
        "ops".to_string(),
        RoomInfo {
            platform: "slack".into(),
            capabilities: Capabilities::default(),
            members: vec!["alice".into(), "bob".into(), "carol".into()],
            hours: None,
        },
    );
    let members = ["alice", "bob", "dave"]
        .into_iter()
        .map(|m| {
            (
                m.to_string(),
                MailPrefs {
                    address: format!("{m}@example.test"),
                    delay: Duration::from_secs(120),
                    mode: NotifyMode::Batched,
                },
            )
        })
        .collect();
    Router {
        rooms,
        routes: vec![Route {
            equal: Vec::new(),
            regex: Vec::new(),
            rooms: vec!["ops".into()],
            mention,
            continue_matching: false,
        }],
        handles: BTreeMap::new(),
        public_url: "https://tocsin.test".into(),
        groups: [(
            "db".to_string(),
            vec!["alice".to_string(), "dave".to_string()],
        )]
        .into(),
        mail: MailPolicy {
            members,
            batch_window: Duration::from_secs(600),
        },
    }
}

fn opened(severity: Severity) -> (Ticket, Entry) {
    let alert = Alert {
        source: "hooks".into(),
        fingerprint: "f".into(),
        status: Status::Firing,
        title: "Disk full".into(),
        severity,
        labels: Labels::new(),
        annotations: Labels::new(),
        description: None,
        url: None,
        starts_at: None,
        ends_at: None,
        received_at: Timestamp::from_millis(1_000_000),
        routing: Routing::default(),
        raw: None,
    };
    let (ticket, draft) = crate::domain::ticket::open("t".into(), 1, &alert, None);
    (ticket, draft.with_seq(1))
}

fn presence(states: &[usize]) -> BTreeMap<String, Presence> {
    MEMBERS
        .iter()
        .zip(states)
        .map(|(m, s)| {
            (
                m.to_string(),
                Presence {
                    state: STATES[*s],
                    since: Timestamp::from_millis(0),
                    source: "api".into(),
                },
            )
        })
        .collect()
}

#[test]
fn groups_mention_each_member_and_here_and_all_stay_platform_mentions() {
    let r = router(vec!["db".into(), "here".into(), "alice".into()]);
    let mentions = r.mentions(&r.routes[0].mention, "slack");
    assert_eq!(
        mentions,
        vec![
            Mention::Here,
            Mention::Member {
                name: "alice".into(),
                handle: None
            },
            Mention::Member {
                name: "dave".into(),
                handle: None
            },
        ]
    );
}

proptest! {
    #[test]
    fn mail_goes_only_to_members_who_would_miss_the_mention(
        states in proptest::collection::vec(0usize..4, 4),
        names in proptest::collection::vec(prop_oneof![
            Just("alice"), Just("bob"), Just("carol"), Just("dave"), Just("db"), Just("here"), Just("all")
        ], 0..5),
        critical in any::<bool>(),
        unsubscribed_bob in any::<bool>(),
    ) {
        let names: Vec<String> = names.into_iter().map(String::from).collect();
        let r = router(names.clone());
        let (ticket, entry) = opened(if critical { Severity::Critical } else { Severity::Warning });
        let presence = presence(&states);
        let unsubscribed: BTreeSet<String> =
            if unsubscribed_bob { ["bob".to_string()].into() } else { BTreeSet::new() };
        let drafts = r.plan_mail(&ticket, &entry, &presence, &unsubscribed);

        let mut seen = BTreeSet::new();
        for d in &drafts {
            prop_assert!(seen.insert(d.member.clone()), "{} twice", d.member);
            prop_assert!(r.mail.members.contains_key(&d.member), "{} has no address", d.member);
            prop_assert!(mail::should_email(presence[&d.member].state, critical));
            prop_assert!(!(unsubscribed_bob && d.member == "bob"));
            prop_assert_eq!(d.due, entry.at.plus(Duration::from_secs(120)));
        }
        // Exactly who should get one: mentioned by name, through the group, or by `all` (room
        // members), with an address, not unsubscribed, not present. `here` adds nobody.
        let mut want = BTreeSet::new();
        for n in &names {
            let covered: Vec<&str> = match n.as_str() {
                "here" => vec![],
                "all" => vec!["alice", "bob", "carol"],
                "db" => vec!["alice", "dave"],
                m => vec![m],
            };
            for m in covered {
                if r.mail.members.contains_key(m)
                    && !(unsubscribed_bob && m == "bob")
                    && mail::should_email(presence[m].state, critical)
                {
                    want.insert(m.to_string());
                }
            }
        }
        prop_assert_eq!(seen, want);
    }

    #[test]
    fn only_openings_and_reopenings_send_mail(states in proptest::collection::vec(0usize..4, 4)) {
        let r = router(vec!["all".into(), "dave".into()]);
        let (ticket, mut entry) = opened(Severity::Critical);
        entry.kind = EntryKind::Refired;
        prop_assert!(r.plan_mail(&ticket, &entry, &presence(&states), &BTreeSet::new()).is_empty());
    }
}

#[test]
fn a_note_typed_in_a_room_is_not_echoed_there() {
    let mut r = router(Vec::new());
    let ops = r.rooms["ops"].clone();
    r.rooms.insert("dev".into(), ops);
    r.routes[0].rooms.push("dev".into());
    let (ticket, mut entry) = opened(Severity::Warning);
    entry.kind = EntryKind::Note;
    entry.visibility = Visibility::Public;
    entry.text = "disk replaced".into();
    entry.data = serde_json::json!({"via": "matrix", "room": "ops"});
    let rooms =
        |e: &Entry| -> Vec<String> { r.plan(&ticket, e).into_iter().map(|d| d.room).collect() };
    assert_eq!(rooms(&entry), vec!["dev".to_string()]);
    // From elsewhere (the API, email), a note goes to every room.
    entry.data = serde_json::json!({"via": "api"});
    assert_eq!(rooms(&entry), vec!["ops".to_string(), "dev".to_string()]);
}

/// `ops` with Mon–Fri 09:00–17:30 Berlin hours and `off`, plus an always-open `oncall` room. The
/// test tickets open on a Thursday at 01:16 Berlin time (1970-01-01T00:16:40Z): off hours.
fn router_with_hours(off: OffHours) -> Router {
    let mut r = router(Vec::new());
    let oncall = r.rooms["ops"].clone();
    r.rooms.insert("oncall".into(), oncall);
    r.rooms.get_mut("ops").unwrap().hours = Some(RoomHours {
        hours: crate::domain::hours::Hours::new(&[0, 1, 2, 3, 4], 540, 1050, "Europe/Berlin")
            .unwrap(),
        off_hours: off,
    });
    r
}

fn rooms_and_holds(plan: &Plan) -> Vec<(String, DeliveryKind, Option<Timestamp>)> {
    plan.deliveries
        .iter()
        .map(|d| (d.room.clone(), d.kind, d.hold_until))
        .collect()
}

#[test]
fn off_hours_route_sends_to_the_other_room() {
    let r = router_with_hours(OffHours::Route("oncall".into()));
    let (ticket, entry) = opened(Severity::Warning);
    let plan = r.plan_full(&ticket, &entry);
    assert_eq!(
        rooms_and_holds(&plan),
        vec![("oncall".to_string(), DeliveryKind::Root, None)]
    );
    assert_eq!(plan.off_hours.len(), 1);
    assert_eq!(
        plan.off_hours[0].text,
        "Room ops is outside business hours (Mon–Fri 09:00–17:30 Europe/Berlin); sent to oncall."
    );
    // In hours (Thursday 10:00 Berlin), ops gets it itself.
    let mut in_hours = entry.clone();
    in_hours.at = Timestamp::from_millis(9 * 3_600_000);
    let plan = r.plan_full(&ticket, &in_hours);
    assert_eq!(
        rooms_and_holds(&plan),
        vec![("ops".to_string(), DeliveryKind::Root, None)]
    );
    assert!(plan.off_hours.is_empty());
}

#[test]
fn off_hours_hold_waits_for_the_opening_except_for_critical_tickets() {
    let r = router_with_hours(OffHours::Hold);
    // Thursday 09:00 Berlin is 08:00 UTC.
    let opening = Timestamp::from_millis(8 * 3_600_000);
    let (ticket, entry) = opened(Severity::Warning);
    let plan = r.plan_full(&ticket, &entry);
    assert_eq!(
        rooms_and_holds(&plan),
        vec![("ops".to_string(), DeliveryKind::Root, Some(opening))]
    );
    assert_eq!(
        plan.off_hours[0].action,
        OffHoursAction::Held { until: opening }
    );
    let (critical, entry) = opened(Severity::Critical);
    let plan = r.plan_full(&critical, &entry);
    assert_eq!(
        rooms_and_holds(&plan),
        vec![("ops".to_string(), DeliveryKind::Root, None)]
    );
    assert!(plan.off_hours.is_empty());
}

#[test]
fn off_hours_notice_comes_with_firings_only() {
    let r = router_with_hours(OffHours::Notice);
    let (ticket, entry) = opened(Severity::Warning);
    let plan = r.plan_full(&ticket, &entry);
    assert_eq!(
        rooms_and_holds(&plan),
        vec![
            ("ops".to_string(), DeliveryKind::Root, None),
            ("ops".to_string(), DeliveryKind::Notice, None),
        ]
    );
    let Content::Ticket(notice) = &plan.deliveries[1].content else {
        panic!("a notice is a ticket message");
    };
    assert_eq!(
        notice.change,
        Change::Note {
            author: "tocsin".into(),
            text: "Outside business hours (Mon–Fri 09:00–17:30 Europe/Berlin); the team is back at Thu 1970-01-01 09:00.".into()
        }
    );
    assert_eq!(
        plan.off_hours[0].action,
        OffHoursAction::Noticed {
            // Wednesday 17:30 Berlin.
            period_start: Timestamp::from_millis(-(7 * 3_600_000 + 30 * 60_000)),
            back_at: Timestamp::from_millis(8 * 3_600_000),
        }
    );
    // A resolution off hours brings no notice.
    let mut resolved = entry.clone();
    resolved.kind = EntryKind::Resolved;
    let plan = r.plan_full(&ticket, &resolved);
    assert_eq!(
        rooms_and_holds(&plan),
        vec![("ops".to_string(), DeliveryKind::Reply, None)]
    );
    assert!(plan.off_hours.is_empty());
}

proptest! {
    /// `matched` (the Alertmanager API's groups) names the same rooms as `targets` (what is
    /// delivered), in the same order, and credits each room to a route that matched before any
    /// route that stops matching.
    #[test]
    fn matched_names_the_rooms_targets_names_and_credits_routes_that_matched(
        routes in proptest::collection::vec(
            (0usize..3, proptest::collection::vec(0usize..3, 0..3), any::<bool>()),
            0..5,
        ),
        severity in 0usize..2,
        plugin_rooms in proptest::collection::vec(0usize..4, 0..3),
    ) {
        // `nowhere` is not a configured room: plugins may name it, routing ignores it.
        const ROOMS: [&str; 4] = ["ops", "db", "web", "nowhere"];
        const SEVERITIES: [Severity; 2] = [Severity::Critical, Severity::Warning];
        let mut r = router(Vec::new());
        let ops = r.rooms["ops"].clone();
        r.rooms.insert("db".into(), ops.clone());
        r.rooms.insert("web".into(), ops);
        r.routes = routes
            .iter()
            .map(|(sev, rooms, cont)| Route {
                // 2: a route that matches everything.
                equal: SEVERITIES
                    .get(*sev)
                    .map(|s| ("severity".to_string(), s.as_str().to_string()))
                    .into_iter()
                    .collect(),
                regex: Vec::new(),
                rooms: rooms.iter().map(|i| ROOMS[*i].to_string()).collect(),
                mention: Vec::new(),
                continue_matching: *cont,
            })
            .collect();
        let (mut ticket, _) = opened(SEVERITIES[severity]);
        ticket.routing.rooms = plugin_rooms.iter().map(|i| ROOMS[*i].to_string()).collect();

        let matched = r.matched(&ticket);
        let mut rooms: Vec<String> = Vec::new();
        for (_, room) in &matched {
            if !rooms.contains(room) {
                rooms.push(room.clone());
            }
        }
        prop_assert_eq!(rooms, r.targets(&ticket).0);
        for (i, room) in &matched {
            prop_assert!(r.rooms.contains_key(room) || i.is_some());
            if let Some(i) = i {
                prop_assert!(r.routes[*i].matches(&ticket));
                prop_assert!(r.routes[*i].rooms.contains(room));
                let stopped = r.routes[..*i]
                    .iter()
                    .any(|x| x.matches(&ticket) && !x.continue_matching);
                prop_assert!(!stopped, "route {} is after one that stops", i);
            }
        }
    }
}

#[test]
fn what_plugins_did_is_not_news_for_rooms() {
    let r = router(Vec::new());
    let (ticket, mut entry) = opened(Severity::Critical);
    assert!(!r.plan_full(&ticket, &entry).deliveries.is_empty());
    for kind in [
        EntryKind::PluginDecided,
        EntryKind::UnknownRoom,
        EntryKind::PluginFailed,
    ] {
        entry.kind = kind;
        assert_eq!(r.plan_full(&ticket, &entry), Plan::default(), "{kind:?}");
    }
}
