//! `chatops:`: acting on tickets from chat (Slack, Mattermost, Matrix). Chat users are mapped to members
//! through `members.<name>.handles.<platform>`.

use serde::Deserialize;

use super::values::{Env, HumanDuration, Secret};

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
