//! Pure domain types and decisions: alerts, tickets, timelines, time.
//!
//! Rule: nothing in `domain/` does IO, spawns, awaits or reads the clock. Callers pass `now` in. This is
//! what lets the state machine be tested by properties and shared verbatim by every store backend.

pub mod alert;
pub mod breaker;
pub mod change;
pub mod command;
pub mod decision;
pub mod delivery;
pub mod entries;
pub mod hours;
pub mod lease;
pub mod mail;
pub mod message;
pub mod pattern;
pub mod plugin;
pub mod plugin_event;
pub mod presence;
pub mod reply;
pub mod routing;
pub mod silence;
pub mod system;
pub mod ticket;
pub mod time;
pub mod timeline;
