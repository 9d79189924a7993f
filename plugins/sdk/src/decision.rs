//! Constructors and chainable builders for `Decision`.
//!
//! Builders work on the `Decision` itself so a rule can return `Ok(Decision::route().room("ops"))`
//! without a final `.build()`, and can grow a decision step by step starting from `pass()`.

use crate::{Decision, Routed, Severity, TicketFields};

impl Decision {
    /// No opinion: the next plugin sees the event unchanged.
    pub fn pass() -> Decision {
        Decision::Pass
    }

    /// Drops the alert (no ticket) and ends the chain. `reason` shows in tocsin's dropped list.
    pub fn drop(reason: impl Into<String>) -> Decision {
        Decision::Drop(reason.into())
    }

    /// An empty route, to fill with the builder methods below. A route that ends up adding
    /// nothing is sent to tocsin as `pass` (see [`Decision::is_pass`]).
    pub fn route() -> Decision {
        Decision::Route(Routed {
            ticket: TicketFields {
                title: None,
                severity: None,
                body: None,
                tags: Vec::new(),
                group_key: None,
            },
            add_labels: Vec::new(),
            rooms: Vec::new(),
            mentions: Vec::new(),
        })
    }

    /// Whether this is `pass`, or a route that adds nothing (the host treats both alike).
    pub fn is_pass(&self) -> bool {
        match self {
            Decision::Pass => true,
            Decision::Drop(_) => false,
            Decision::Route(r) => *r == empty_route(),
        }
    }

    /// The drop reason, if this is a drop.
    pub fn drop_reason(&self) -> Option<&str> {
        match self {
            Decision::Drop(reason) => Some(reason),
            _ => None,
        }
    }

    /// The route, if this is one.
    pub fn routed(&self) -> Option<&Routed> {
        match self {
            Decision::Route(r) => Some(r),
            _ => None,
        }
    }

    /// Applies `f` to the route. `pass` first becomes an empty route; a `drop` stays as it is,
    /// because a drop ends the chain and nothing added to it would be seen.
    fn edit(self, f: impl FnOnce(&mut Routed)) -> Decision {
        let mut d = match self {
            Decision::Pass => Decision::route(),
            other => other,
        };
        if let Decision::Route(r) = &mut d {
            f(r);
        }
        d
    }

    /// Adds a room (`rooms.<name>` in tocsin's config) to notify. Duplicates are ignored.
    pub fn room(self, name: impl Into<String>) -> Decision {
        let name = name.into();
        self.edit(|r| push_unique(&mut r.rooms, name))
    }

    /// Adds a mention: a member (`members.<name>`), a group, `here` or `all`. Duplicates are ignored.
    pub fn mention(self, who: impl Into<String>) -> Decision {
        let who = who.into();
        self.edit(|r| push_unique(&mut r.mentions, who))
    }

    /// Adds (or replaces) label `key` on the alert; later plugins and routes see it.
    pub fn add_label(self, key: impl Into<String>, value: impl Into<String>) -> Decision {
        let (key, value) = (key.into(), value.into());
        self.edit(|r| {
            r.add_labels.retain(|(k, _)| *k != key);
            r.add_labels.push((key, value));
            // The WIT says kv lists are sorted by key.
            r.add_labels.sort();
        })
    }

    /// Replaces the ticket title.
    pub fn title(self, title: impl Into<String>) -> Decision {
        let title = title.into();
        self.edit(|r| r.ticket.title = Some(title))
    }

    /// Replaces the ticket severity.
    pub fn severity(self, severity: Severity) -> Decision {
        self.edit(|r| r.ticket.severity = Some(severity))
    }

    /// Sets the ticket's Markdown body (runbook links, ownership, context).
    pub fn body(self, markdown: impl Into<String>) -> Decision {
        let markdown = markdown.into();
        self.edit(|r| r.ticket.body = Some(markdown))
    }

    /// Adds a free-form tag to the ticket. Duplicates are ignored.
    pub fn tag(self, tag: impl Into<String>) -> Decision {
        let tag = tag.into();
        self.edit(|r| push_unique(&mut r.ticket.tags, tag))
    }

    /// Groups this alert onto one ticket with every alert of the same source and group key.
    pub fn group_key(self, key: impl Into<String>) -> Decision {
        let key = key.into();
        self.edit(|r| r.ticket.group_key = Some(key))
    }
}

fn empty_route() -> Routed {
    match Decision::route() {
        Decision::Route(r) => r,
        _ => unreachable!(),
    }
}

fn push_unique(list: &mut Vec<String>, item: String) {
    if !list.contains(&item) {
        list.push(item);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders() {
        let d = Decision::route()
            .room("ops")
            .room("ops")
            .mention("alice")
            .add_label("b", "1")
            .add_label("a", "2")
            .add_label("b", "3")
            .title("T")
            .severity(Severity::Critical)
            .tag("x")
            .group_key("g");
        let r = d.routed().unwrap();
        assert_eq!(r.rooms, ["ops"]);
        assert_eq!(r.mentions, ["alice"]);
        assert_eq!(
            r.add_labels,
            [("a".into(), "2".into()), ("b".into(), "3".into())]
        );
        assert_eq!(r.ticket.severity, Some(Severity::Critical));
        assert_eq!(r.ticket.group_key.as_deref(), Some("g"));
    }

    #[test]
    fn pass_grows_into_route_and_drop_stays() {
        assert!(Decision::pass().is_pass());
        assert!(Decision::route().is_pass());
        assert!(!Decision::pass().tag("t").is_pass());
        assert!(Decision::pass().tag("t").routed().is_some());
        assert_eq!(Decision::drop("why").room("ops").drop_reason(), Some("why"));
    }
}
