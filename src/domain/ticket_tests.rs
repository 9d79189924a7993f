//! Tests of the ticket state machine: examples, and properties over any sequence of alerts.

use super::*;
use proptest::prelude::*;

const MIN: i64 = 60_000;

fn alert(status: Status, starts: Option<i64>, at: i64) -> Alert {
    Alert {
        source: "prom".into(),
        fingerprint: "f".into(),
        status,
        title: "Disk full".into(),
        severity: Severity::Critical,
        labels: Labels::new(),
        annotations: Labels::new(),
        description: None,
        url: None,
        starts_at: starts.map(Timestamp::from_millis),
        ends_at: Some(Timestamp::from_millis(at + 4 * MIN)),
        received_at: Timestamp::from_millis(at),
        routing: Routing::default(),
        raw: None,
    }
}

fn policy() -> Policy {
    Policy {
        reopen_window: Duration::from_secs(3600),
    }
}

/// Runs one alert through decide + open/apply like a store does, returning the entries written.
fn feed(cur: &mut Option<Ticket>, a: &Alert, next_number: &mut i64) -> Vec<EntryDraft> {
    match decide(cur.as_ref(), a, &policy()) {
        AlertDecision::Open { .. } => {
            *next_number += 1;
            let (t, e) = open(format!("id{next_number}"), *next_number, a, cur.as_ref());
            *cur = Some(t);
            vec![e]
        }
        AlertDecision::Ignore { .. } => vec![],
        d => apply_alert(cur.as_mut().unwrap(), &d, a)
            .into_iter()
            .collect(),
    }
}

#[test]
fn heartbeats_add_no_entries() {
    let mut cur = None;
    let mut n = 0;
    assert_eq!(
        feed(&mut cur, &alert(Status::Firing, Some(0), 0), &mut n).len(),
        1
    );
    for i in 1..10 {
        assert!(feed(&mut cur, &alert(Status::Firing, Some(0), i * MIN), &mut n).is_empty());
    }
    let t = cur.unwrap();
    assert_eq!((t.resend_count, t.firing_count, n), (9, 1, 1));
    assert_eq!(t.last_seen, Timestamp::from_millis(9 * MIN));
    assert_eq!(t.ends_at, Some(Timestamp::from_millis(13 * MIN)));
}

#[test]
fn new_start_while_open_is_a_refire() {
    let mut cur = None;
    let mut n = 0;
    feed(&mut cur, &alert(Status::Firing, Some(0), 0), &mut n);
    let e = feed(
        &mut cur,
        &alert(Status::Firing, Some(5 * MIN), 5 * MIN),
        &mut n,
    );
    assert_eq!(e[0].kind, EntryKind::Refired);
    assert_eq!(cur.unwrap().firing_count, 2);
}

#[test]
fn reopen_inside_window_new_ticket_after() {
    let mut cur = None;
    let mut n = 0;
    feed(&mut cur, &alert(Status::Firing, Some(0), 0), &mut n);
    feed(&mut cur, &alert(Status::Resolved, Some(0), MIN), &mut n);
    assert_eq!(cur.as_ref().unwrap().state, TicketState::Resolved);
    let e = feed(
        &mut cur,
        &alert(Status::Firing, Some(10 * MIN), 10 * MIN),
        &mut n,
    );
    assert_eq!(e[0].kind, EntryKind::Reopened);
    assert_eq!(n, 1);
    feed(
        &mut cur,
        &alert(Status::Resolved, Some(10 * MIN), 11 * MIN),
        &mut n,
    );
    let e = feed(
        &mut cur,
        &alert(Status::Firing, Some(200 * MIN), 200 * MIN),
        &mut n,
    );
    assert_eq!(e[0].kind, EntryKind::Opened);
    assert_eq!(n, 2);
    assert_eq!(cur.unwrap().previous_id.as_deref(), Some("id1"));
}

#[test]
fn lease_expiry_resolves_and_a_late_resend_reopens() {
    let mut cur = None;
    let mut n = 0;
    feed(&mut cur, &alert(Status::Firing, Some(0), 0), &mut n);
    let t = cur.as_mut().unwrap();
    assert!(expire(t, Timestamp::from_millis(3 * MIN)).is_none());
    let e = expire(t, Timestamp::from_millis(5 * MIN)).unwrap();
    assert_eq!(e.at, Timestamp::from_millis(4 * MIN));
    assert_eq!(t.resolution, Some(Resolution::Expired));
    let e = feed(&mut cur, &alert(Status::Firing, Some(0), 6 * MIN), &mut n);
    assert_eq!(e[0].kind, EntryKind::Reopened);
}

#[test]
fn resend_after_manual_resolve_is_ignored() {
    let mut cur = None;
    let mut n = 0;
    feed(&mut cur, &alert(Status::Firing, Some(0), 0), &mut n);
    act(
        cur.as_mut().unwrap(),
        &Action::Resolve,
        &Actor::new("alice", "api"),
        Timestamp::from_millis(MIN),
    )
    .unwrap();
    assert!(feed(&mut cur, &alert(Status::Firing, Some(0), 2 * MIN), &mut n).is_empty());
    assert_eq!(cur.unwrap().state, TicketState::Resolved);
}

#[test]
fn actions_follow_the_state_machine() {
    let mut cur = None;
    let mut n = 0;
    feed(&mut cur, &alert(Status::Firing, Some(0), 0), &mut n);
    let t = cur.as_mut().unwrap();
    let now = Timestamp::from_millis(MIN);
    let bob = Actor::new("bob", "slack");
    assert_eq!(
        act(t, &Action::Ack, &bob, now).unwrap().kind,
        EntryKind::Acked
    );
    assert!(matches!(
        act(t, &Action::Ack, &bob, now),
        Err(ActionError::AlreadyAcked(_))
    ));
    act(t, &Action::Resolve, &bob, now).unwrap();
    assert!(matches!(
        act(t, &Action::Ack, &bob, now),
        Err(ActionError::Resolved(_))
    ));
    let note = Action::Note {
        text: "root cause: full disk".into(),
        visibility: Visibility::Internal,
    };
    assert_eq!(
        act(t, &note, &bob, now).unwrap().visibility,
        Visibility::Internal
    );
    let sys = Action::Note {
        text: "x".into(),
        visibility: Visibility::System,
    };
    assert_eq!(act(t, &sys, &bob, now), Err(ActionError::SystemVisibility));
}

#[test]
fn assigning_names_both_members_and_the_channel() {
    let mut cur = None;
    let mut n = 0;
    feed(&mut cur, &alert(Status::Firing, Some(0), 0), &mut n);
    let t = cur.as_mut().unwrap();
    let now = Timestamp::from_millis(MIN);
    let bob = Actor::new("bob", "slack");
    let to = |m: &str| Action::Assign {
        member: Some(m.to_string()),
    };
    let e = act(t, &to("alice"), &bob, now).unwrap();
    assert_eq!(e.kind, EntryKind::Assigned);
    assert_eq!(e.text, "Assigned to alice by bob (via slack).");
    assert_eq!(e.data["via"], "slack");
    assert_eq!(t.assignee.as_deref(), Some("alice"));
    assert!(matches!(
        act(t, &to("alice"), &bob, now),
        Err(ActionError::AlreadyAssigned(_, _))
    ));
    let e = act(t, &to("bob"), &bob, now).unwrap();
    assert_eq!(e.text, "bob took the ticket (via slack).");
    assert_eq!(e.data["previous"], "alice");
    act(t, &Action::Assign { member: None }, &bob, now).unwrap();
    assert_eq!(t.assignee, None);
    assert!(matches!(
        act(t, &Action::Assign { member: None }, &bob, now),
        Err(ActionError::NotAssigned(_))
    ));
}

#[test]
fn a_senders_update_changes_severity_and_adds_a_note_and_nothing_else() {
    let mut n = 0;
    let mut cur = None;
    let update = |severity, comment: Option<&str>, at| Alert {
        severity,
        description: comment.map(str::to_string),
        title: "ignored".into(),
        ..alert(Status::Updated, None, at)
    };
    // Without a ticket, an update opens nothing.
    assert!(feed(&mut cur, &update(Severity::Error, Some("x"), 0), &mut n).is_empty());
    assert!(cur.is_none());
    feed(&mut cur, &alert(Status::Firing, Some(0), 0), &mut n);
    let before = cur.clone().unwrap();

    let e = feed(
        &mut cur,
        &update(Severity::Warning, Some(" Failing over "), MIN),
        &mut n,
    );
    assert_eq!(e.len(), 2);
    assert_eq!(e[0].kind, EntryKind::SeverityChanged);
    assert_eq!(
        e[0].text,
        "Severity changed from critical to warning by prom."
    );
    assert_eq!(e[0].data["from"], "critical");
    assert_eq!(e[0].data["to"], "warning");
    assert_eq!(
        (e[1].kind, e[1].visibility),
        (EntryKind::Note, Visibility::Public)
    );
    assert_eq!(e[1].text, "Failing over");
    assert_eq!(e[1].actor, "source:prom");
    let t = cur.clone().unwrap();
    assert_eq!(t.severity, Severity::Warning);
    // Nothing else: state, title, counters and the firing stay as they were.
    assert_eq!(
        (
            t.state,
            &t.title,
            t.firing_count,
            t.resend_count,
            t.starts_at
        ),
        (
            before.state,
            &before.title,
            before.firing_count,
            before.resend_count,
            before.starts_at
        )
    );

    // The same severity and no comment change nothing; a comment alone is a note, in any state.
    assert!(feed(&mut cur, &update(Severity::Warning, None, 2 * MIN), &mut n).is_empty());
    assert!(feed(
        &mut cur,
        &update(Severity::None, Some("  "), 2 * MIN),
        &mut n
    )
    .is_empty());
    feed(&mut cur, &alert(Status::Resolved, Some(0), 3 * MIN), &mut n);
    let e = feed(
        &mut cur,
        &update(Severity::None, Some("root cause: disk"), 4 * MIN),
        &mut n,
    );
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].kind, EntryKind::Note);
    assert_eq!(cur.unwrap().state, TicketState::Resolved);
}

fn arb_alert() -> impl Strategy<Value = Alert> {
    (any::<bool>(), 0i64..6, 0i64..400).prop_map(|(firing, start, at)| {
        let status = if firing {
            Status::Firing
        } else {
            Status::Resolved
        };
        alert(status, Some(start * 30 * MIN), at * MIN)
    })
}

proptest! {
    /// Whatever sequence of alerts arrives (in order of receipt), a ticket's counters and states stay
    /// consistent, only real changes write entries, and a key never has two active tickets.
    #[test]
    fn state_machine_invariants(mut alerts in proptest::collection::vec(arb_alert(), 1..60)) {
        alerts.sort_by_key(|a| a.received_at);
        let mut cur: Option<Ticket> = None;
        let mut n = 0;
        let mut entries = 0i64;
        let mut resends = 0i64;
        for a in &alerts {
            let before = cur.clone();
            let decision = decide(cur.as_ref(), a, &policy());
            let written = feed(&mut cur, a, &mut n);
            if decision == AlertDecision::Resend {
                resends += 1;
                prop_assert!(written.is_empty());
            }
            if matches!(decision, AlertDecision::Open { .. }) {
                entries = 0;
                resends = 0;
                if let Some(prev) = &before {
                    prop_assert!(!prev.state.is_active(), "a second ticket opened while one was active");
                }
            }
            entries += written.len() as i64;
            if let Some(t) = &cur {
                prop_assert_eq!(t.resend_count, resends);
                prop_assert_eq!(t.state == TicketState::Resolved, t.resolved_at.is_some());
                prop_assert!(t.firing_count >= 1);
                // Every firing of this ticket wrote exactly one opened/refired/reopened entry.
                prop_assert!(entries >= t.firing_count);
            }
            if a.status == Status::Resolved {
                prop_assert!(cur.as_ref().is_none_or(|t| t.state == TicketState::Resolved
                    || before.as_ref().is_some_and(|b| b.starts_at > a.starts_at)));
            }
        }
    }
}

proptest! {
    /// A resend is saved with the narrow heartbeat update exactly when applying it would change
    /// nothing but the heartbeat fields: the store never skips a content change, and never rewrites a
    /// whole ticket for a bare heartbeat.
    #[test]
    fn a_heartbeat_changes_only_heartbeat_fields(
        title in any::<bool>(), severity in any::<bool>(), label in any::<bool>(),
        annotation in any::<bool>(), url in 0u8..3, routing in any::<bool>(), later in 1i64..100,
    ) {
        let mut first = alert(Status::Firing, Some(0), 0);
        first.url = Some("http://a".into());
        let mut cur = None;
        feed(&mut cur, &first, &mut 0);
        let ticket = cur.unwrap();
        let mut a = alert(Status::Firing, Some(0), later * MIN);
        if title { a.title = "Disk nearly full".into(); }
        if severity { a.severity = Severity::Warning; }
        if label { a.labels.insert("host".into(), "db1".into()); }
        if annotation { a.annotations.insert("summary".into(), "full".into()); }
        a.url = match url { 0 => None, 1 => Some("http://a".into()), _ => Some("http://b".into()) };
        if routing { a.routing.rooms.push("ops".into()); }
        let d = decide(Some(&ticket), &a, &policy());
        prop_assert_eq!(&d, &AlertDecision::Resend);
        let heartbeat = is_heartbeat(&ticket, &d, &a);
        let mut after = ticket.clone();
        prop_assert!(apply_alert(&mut after, &d, &a).is_empty());
        // Put the heartbeat fields back: what is left is what a narrow update would not save.
        after.updated_at = ticket.updated_at;
        after.last_seen = ticket.last_seen;
        after.ends_at = ticket.ends_at;
        after.resend_count = ticket.resend_count;
        prop_assert_eq!(heartbeat, after == ticket);
    }
}
