//! One parser per sender kind beyond tocsin's own three (`ingest::parse`): each turns its sender's
//! payload into normalised alerts with a stable key and a firing, resolved (or acknowledged) status.
//! Pure, like `ingest::parse`: bytes and a context in, alerts out.

pub mod datadog;
pub mod grafana;
pub(crate) mod json;
pub mod mapping;
pub mod newrelic;
pub mod pagerduty;
pub mod pagerduty_change;
pub mod pagerduty_v1;
pub mod sentry;
pub mod sns;
#[cfg(test)]
pub(crate) mod testing;
pub mod uptime_kuma;
pub mod zabbix;
