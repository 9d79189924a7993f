//! severity-router: sends alerts to their team's room, and pages the team's on-call for critical ones.
//!
//! - `info` alerts pass untouched (no room, no mention).
//! - Anything else (`none` too: an unknown severity is safer seen than silenced) goes to the room
//!   of its `team` label, from lookup table `team_rooms` (team → room), else to config
//!   `default_room`. With neither, it passes.
//! - Critical alerts that are firing also mention the team's on-call, from lookup table `oncall`
//!   (team → member), and `here` when config `mention_here_on_critical` is `true`. Resolved
//!   alerts never mention anyone: nobody needs paging for good news.

use tocsin_plugin_sdk::prelude::*;

struct SeverityRouter;

impl Plugin for SeverityRouter {
    fn handle(ev: &Event) -> Result<Decision, String> {
        if ev.severity == Severity::Info {
            return Ok(Decision::pass());
        }
        let team = ev.label("team").filter(|t| !t.is_empty());
        let room = team
            .and_then(|t| lookup("team_rooms", t))
            .or_else(|| config("default_room"));
        let mut decision = Decision::pass();
        match room {
            Some(room) => decision = decision.room(room),
            None => log::warn(format!(
                "no room for team {team:?} and no default_room; passing"
            )),
        }
        if ev.severity == Severity::Critical && ev.is_firing() {
            if let Some(member) = team.and_then(|t| lookup("oncall", t)) {
                decision = decision.mention(member);
            }
            if config_flag("mention_here_on_critical") {
                decision = decision.mention("here");
            }
        }
        Ok(decision)
    }
}

export_plugin!(SeverityRouter);
