//! `chatops:`: acting on tickets from chat (Slack, Mattermost, Matrix). Chat users are mapped to members
//! through `members.<name>.handles.<platform>`.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::values::{Env, HumanDuration, Secret};
use super::{MemberConfig, RoomConfig};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatOpsConfig {
    /// Slack slash commands (`POST /chat/slack/command`) and interactive buttons
    /// (`POST /chat/slack/interactive`).
    #[serde(default)]
    pub slack: Option<SlackChatOpsConfig>,
    /// Mattermost slash commands and outgoing webhooks (`POST /chat/mattermost`).
    #[serde(default)]
    pub mattermost: Option<MattermostChatOpsConfig>,
    /// A Matrix bot that reads its rooms and answers commands and thread replies.
    #[serde(default)]
    pub matrix: Option<MatrixChatOpsConfig>,
}

impl ChatOpsConfig {
    /// Problems with the block, as (key under `chatops`, message). `rooms` and `members` are the
    /// config's, for the cross-checks.
    pub fn problems(
        &self,
        rooms: &BTreeMap<String, RoomConfig>,
        members: &BTreeMap<String, MemberConfig>,
    ) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let empty = "is empty (is its environment variable set to an empty string?)";
        if let Some(slack) = &self.slack {
            if slack.signing_secret.expose().trim().is_empty() {
                out.push(("slack.signing_secret".into(), empty.into()));
            }
            if let Some(Env(HumanDuration(d))) = &slack.max_age {
                if d.is_zero() {
                    out.push(("slack.max_age".into(), "must be longer than zero".into()));
                }
            }
        }
        if let Some(mm) = &self.mattermost {
            if mm.tokens.is_empty() {
                out.push((
                    "mattermost.tokens".into(),
                    "needs at least one token (each slash command and outgoing webhook has its own)"
                        .into(),
                ));
            }
            for (i, t) in mm.tokens.iter().enumerate() {
                if t.expose().trim().is_empty() {
                    out.push(("mattermost.tokens".into(), format!("[{i}] {empty}")));
                }
            }
        }
        if let Some(matrix) = &self.matrix {
            if matrix.rooms.is_empty() {
                out.push(("matrix.rooms".into(), "needs at least one room".into()));
            }
            for (i, name) in matrix.rooms.iter().enumerate() {
                match rooms.get(name) {
                    None => out.push((
                        "matrix.rooms".into(),
                        format!("[{i}] `{name}` is not declared under rooms:"),
                    )),
                    Some(room) if room.sink.kind() != "matrix" => out.push((
                        "matrix.rooms".into(),
                        format!(
                            "[{i}] `{name}` is a {} room; the bot reads matrix rooms only",
                            room.sink.kind()
                        ),
                    )),
                    Some(_) => {}
                }
            }
        }
        // A chat user must be one member: two members with the same handle would make it a guess.
        for platform in ["slack", "mattermost_id", "matrix"] {
            let configured = match platform {
                "slack" => self.slack.is_some(),
                "mattermost_id" => self.mattermost.is_some(),
                _ => self.matrix.is_some(),
            };
            if !configured {
                continue;
            }
            let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
            for (name, m) in members {
                if let Some(handle) = m.handles.get(platform) {
                    if let Some(other) = seen.insert(handle.0.as_str(), name) {
                        out.push((
                            format!("members.{name}.handles.{platform}"),
                            format!(
                                "the same {platform} handle as members.{other}; chat commands need to know which member it is"
                            ),
                        ));
                    }
                }
            }
        }
        out
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackChatOpsConfig {
    /// The app's signing secret (Basic Information → App Credentials). Requests are verified with it.
    pub signing_secret: Secret,
    /// How old a request's timestamp may be. Slack recommends five minutes.
    #[serde(default)]
    pub max_age: Option<Env<HumanDuration>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MattermostChatOpsConfig {
    /// Tokens Mattermost sends with slash commands and outgoing webhooks (one per integration).
    pub tokens: Vec<Secret>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatrixChatOpsConfig {
    /// Rooms (names under `rooms:`, of kind `matrix`) whose messages the bot reads, with that room's
    /// homeserver and access token.
    pub rooms: Vec<String>,
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    fn problems(chatops: &str) -> Vec<String> {
        let yaml = format!(
            "members:\n  \
               alice: {{role: admin, handles: {{slack: U1, mattermost: alice}}}}\n  \
               bob: {{role: editor, handles: {{slack: U1}}}}\n\
             rooms:\n  \
               ops: {{sink: {{kind: slack, token: xoxb-1, channel: C1}}}}\n  \
               mx: {{sink: {{kind: matrix, homeserver: https://m.test, room_id: '!r:m.test', access_token: t}}}}\n\
             {chatops}"
        );
        match Config::from_yaml(&yaml, Path::new("t.yaml")) {
            Ok(_) => Vec::new(),
            Err(e) => e.problems.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn every_problem_names_its_key() {
        let got = problems(
            "chatops:\n  \
               slack: {signing_secret: '', max_age: 0s}\n  \
               mattermost: {tokens: ['']}\n  \
               matrix: {rooms: [ops, nowhere, mx]}\n",
        );
        let want = [
            "chatops.slack.signing_secret: is empty",
            "chatops.slack.max_age: must be longer than zero",
            "chatops.mattermost.tokens: [0] is empty",
            "chatops.matrix.rooms: [0] `ops` is a slack room",
            "chatops.matrix.rooms: [1] `nowhere` is not declared under rooms:",
            "members.bob.handles.slack: the same slack handle as members.alice",
        ];
        for w in want {
            assert!(got.iter().any(|p| p.contains(w)), "{w} not in {got:#?}");
        }
        assert_eq!(got.len(), want.len(), "{got:#?}");
        let none = problems("chatops:\n  mattermost: {tokens: []}\n");
        assert!(none
            .iter()
            .any(|p| p.contains("chatops.mattermost.tokens: needs at least one token")));
    }

    #[test]
    fn a_good_block_passes_and_unknown_keys_are_refused() {
        assert!(
            problems("chatops:\n  mattermost: {tokens: [abc]}\n  matrix: {rooms: [mx]}\n")
                .is_empty()
        );
        let got = problems("chatops:\n  slack: {signing_secret: s, secret: x}\n");
        assert!(
            got.iter().any(|p| p.contains("unknown field `secret`")),
            "{got:#?}"
        );
    }
}
