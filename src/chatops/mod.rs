//! ChatOps: commands typed in chat (`ack T-42`, `note T-42 text`, `silence ...`, `status`, `help`),
//! from Slack, Mattermost and Matrix, run as the member the chat user is mapped to.
//!
//! Each platform's module verifies the request (signatures, tokens) and turns it into an [`Origin`] and
//! a text; [`ChatOps::handle`] parses it with `domain::command`, runs it against the store and returns
//! the answer to show in chat. Every action is a timeline entry naming the member and the channel.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::clock::Clock;
use crate::config::Config;
use crate::outbox::Outbox;
use crate::store::Store;

/// Where a command came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// `slack`, `mattermost` or `matrix`: names the member handle to look up and the entry's channel.
    pub platform: &'static str,
    /// The chat user as the platform names them (Slack user id, Mattermost user name, Matrix user id).
    pub user: String,
    /// The tocsin room the command was typed in, when the channel is one of `rooms:`.
    pub room: Option<String>,
}

/// What to answer in chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub text: String,
    /// `true`: everyone in the channel should see it (an action done); `false`: only the user who
    /// typed it (help, refusals, errors), where the platform can do that.
    pub public: bool,
}

/// Runs chat commands against the store.
#[derive(Debug)]
pub struct ChatOps {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    outbox: Arc<Outbox>,
    /// Platform → chat user → member.
    members: BTreeMap<String, BTreeMap<String, String>>,
    public_url: String,
}

impl ChatOps {
    pub fn new(
        config: &Config,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        outbox: Arc<Outbox>,
    ) -> ChatOps {
        let mut members: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for (name, m) in &config.members {
            for (platform, handle) in &m.handles {
                members
                    .entry(platform.clone())
                    .or_default()
                    .insert(handle.0.clone(), name.clone());
            }
        }
        ChatOps {
            store,
            clock,
            outbox,
            members,
            public_url: config.public_url.0.trim_end_matches('/').to_string(),
        }
    }

    /// The member a chat user is, through `members.<name>.handles.<platform>`.
    pub fn member(&self, platform: &str, user: &str) -> Option<&str> {
        self.members
            .get(platform)
            .and_then(|m| m.get(user))
            .map(String::as_str)
    }

    /// Runs one command line and says what to answer.
    pub async fn handle(&self, origin: &Origin, text: &str) -> Answer {
        let _ = (&self.store, &self.clock, &self.outbox, &self.public_url, text);
        match self.member(origin.platform, &origin.user) {
            None => Answer {
                text: format!(
                    "Sorry, I do not know who you are: ask an admin to add your {} handle to a member in tocsin's config.",
                    origin.platform
                ),
                public: false,
            },
            Some(_) => Answer {
                text: "ChatOps is not ready yet.".into(),
                public: false,
            },
        }
    }
}
