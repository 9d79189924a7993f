//! tocsin routes monitoring alerts to people.
//!
//! # Layout
//!
//! Data flows one way: **ingest → plugins → tickets → routing → outbox → sinks**, and for members who
//! are not online, **routing → emails → mailer → SMTP**.
//!
//! - [`ingest`]: HTTP endpoints per configured source. Checks auth, type, size and load, parses the
//!   payload into normalised alerts ([`domain::alert`]) and appends them durably to the journal before
//!   answering 2xx.
//! - [`pipeline`]: the processor behind the journal. Runs each alert's plugin chain, applies alerts to
//!   tickets in batches, exactly once, and resolves tickets whose lease ran out. Driven step by step in
//!   tests.
//! - [`domain`]: pure types and decisions: alerts, the ticket state machine, timeline entries, routing,
//!   delivery retries, presence, who gets email and when, reading replies, silences, business hours.
//!   No IO anywhere in it.
//! - [`outbox`]: the delivery worker: order per room, rate limits, retries, storm digests; [`sinks`]
//!   render and send to each chat platform, and by SMTP ([`sinks::email`]).
//! - [`mailer`]: the email worker: checks again when an email comes due, batches, sends; signed reply
//!   and unsubscribe tokens. [`inbound`]: the SMTP listener that turns replies into notes.
//! - [`presence`]: polls chat platforms for members' presence; [`ratelimit`]: the governor limiters.
//! - [`plugin`]: the WebAssembly host (the only module that names wasmtime): compiled plugins, limits,
//!   fail-open chains, the reloadable registry; [`reload`] re-reads the config for `/-/reload` and SIGHUP.
//! - [`cluster`]: several instances on one PostgreSQL: this instance's heartbeat and the leases that
//!   say which shared work it does (journal, each room's outbox, mailer, ...), fenced in the database.
//! - [`store`]: the one `Store` trait and its SQLite backend (the only module that names a database).
//! - [`api`]: the JSON API for members: tickets, timelines, notes, ack, resolve, members, deliveries;
//!   the unsubscribe page.
//! - [`web`]: the browser UI served at `/`: signed session cookies with CSRF tokens, server-rendered
//!   pages (tickets, a ticket's timeline as a chat, rooms, admin) and one small script that calls the
//!   JSON API and follows `/api/stream` live.
//! - [`chatops`]: commands typed in chat (Slack slash commands and buttons, Mattermost, a Matrix bot),
//!   verified per platform and run as the member the chat user is.
//! - [`ops`]: `/healthz`, `/readyz`, `/metrics`; [`metrics`] holds the counters.
//! - [`config`]: strict config loading with `${VAR}` expansion and validation.
//! - [`stream_hub`]: one feed read per commit fanned out to every live stream; [`throttle`]: failed
//!   credentials counted per client address.
//! - [`listen`]: the HTTP listener's limits (connection cap, header and idle timeouts) and the
//!   open-file limit.
//! - [`app`]: wiring and graceful shutdown; [`cli`]: the `tocsin` command; [`state`]: what handlers share;
//!   [`error`]: the one HTTP error type; [`clock`]: the time seam; [`telemetry`]: logging.
//!
//! ARCHITECTURE.md states which module may use which.

pub mod api;
pub mod app;
pub mod chatops;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod domain;
pub mod error;
pub mod inbound;
pub mod ingest;
pub mod listen;
pub mod mailer;
pub mod metrics;
pub mod ops;
pub mod outbox;
pub mod pipeline;
pub mod plugin;
pub mod presence;
pub mod ratelimit;
pub mod reload;
pub mod sessions;
pub mod sinks;
pub mod state;
pub mod store;
pub mod stream_hub;
pub mod telemetry;
pub mod throttle;
pub mod web;
