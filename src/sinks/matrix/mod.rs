//! The matrix sink (placeholder until its implementation lands).

use async_trait::async_trait;

use super::{http::Client, Capabilities, Outcome, Request, Sink};
use crate::config::MatrixSinkConfig;

#[derive(Debug)]
pub struct MatrixSink {}

impl MatrixSink {
    pub fn new(_config: &MatrixSinkConfig, _client: &Client) -> Result<Self, String> {
        Ok(MatrixSink {})
    }
}

#[async_trait]
impl Sink for MatrixSink {
    fn kind(&self) -> &'static str {
        "matrix"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }

    async fn send(&self, _request: &Request) -> Outcome {
        Outcome::Permanent {
            error: "not implemented".into(),
        }
    }
}
