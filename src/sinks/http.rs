//! The HTTP plumbing every sink shares: one pooled client, and the rules that turn an HTTP answer into
//! an [`Outcome`] (429 and `Retry-After`, 5xx, timeouts, other 4xx).

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::StatusCode;

use super::Outcome;

/// One connection pool for all sinks. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    inner: reqwest::Client,
}

impl Client {
    pub fn new() -> Client {
        let inner = reqwest::Client::builder()
            .user_agent(concat!("tocsin/", env!("CARGO_PKG_VERSION")))
            // Chat platforms never need redirects for their API calls; following one could leak a token.
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .build()
            .unwrap_or_default();
        Client { inner }
    }

    pub fn reqwest(&self) -> &reqwest::Client {
        &self.inner
    }

    /// `GET url?query` with a bearer token: the status and body, or why there is none. For the
    /// CLI reading tocsin's own API (`plugin test --replay`), so only `sinks/` names reqwest.
    pub async fn get_bearer(
        &self,
        url: &str,
        query: &[(&str, &str)],
        token: &str,
    ) -> Result<(u16, String), String> {
        let resp = self
            .inner
            .get(url)
            .query(query)
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        let status = resp.status().as_u16();
        let body = resp.text().await.map_err(|e| format!("{url}: {e}"))?;
        Ok((status, body))
    }
}

impl Default for Client {
    fn default() -> Self {
        Client::new()
    }
}

/// An answer read in full: status, headers and body (bounded).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

/// Bodies past this are cut: error details are short, and a misbehaving server must not fill memory.
const MAX_BODY: usize = 64 * 1024;

/// Sends a request and reads the answer, or says why it could not (as a retryable outcome).
pub async fn execute(
    request: reqwest::RequestBuilder,
    timeout: Duration,
) -> Result<Answer, Outcome> {
    let response = request
        .timeout(timeout)
        .send()
        .await
        .map_err(transport_error)?;
    let status = response.status();
    let headers = response.headers().clone();
    let (bytes, _) = read_limited(response, MAX_BODY)
        .await
        .map_err(transport_error)?;
    let body = String::from_utf8_lossy(&bytes).into_owned();
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// Timeouts, refused connections and broken bodies: all worth retrying.
pub fn transport_error(e: reqwest::Error) -> Outcome {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    Outcome::Retry {
        error: format!("{what}: {}", without_url(&e)),
        after: None,
    }
}

/// reqwest's errors include the URL, and webhook URLs carry secrets.
fn without_url(e: &reqwest::Error) -> String {
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut text = String::new();
    while let Some(s) = source {
        text = s.to_string();
        source = s.source();
    }
    if text.is_empty() {
        "no details".into()
    } else {
        text
    }
}

/// The generic rules for a non-2xx answer: 429 and 5xx retry (429 with the wait from `Retry-After`),
/// 408 retries, other 4xx are permanent. `None` for 2xx, which each sink reads itself.
pub fn classify(answer: &Answer) -> Option<Outcome> {
    let status = answer.status;
    if status.is_success() {
        return None;
    }
    let error = format!("HTTP {}: {}", status.as_u16(), snippet(&answer.body));
    if status == StatusCode::TOO_MANY_REQUESTS {
        return Some(Outcome::Retry {
            error,
            after: retry_after(&answer.headers),
        });
    }
    if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
        return Some(Outcome::Retry {
            error,
            after: retry_after(&answer.headers),
        });
    }
    Some(Outcome::Permanent { error })
}

/// `Retry-After` in seconds (fractions allowed) or as an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = value.parse::<f64>() {
        return seconds(secs);
    }
    let at = httpdate_to_unix(value)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs() as i64;
    Some(Duration::from_secs((at - now).max(0) as u64))
}

/// A wait in seconds from a header or body, if it is a sane number (a day at most).
pub fn seconds(secs: f64) -> Option<Duration> {
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)))
}

/// A header's value as a number, if present.
pub fn header_f64(headers: &HeaderMap, name: &str) -> Option<f64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` as Unix seconds.
fn httpdate_to_unix(text: &str) -> Option<i64> {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let dt = time::PrimitiveDateTime::parse(text, &format).ok()?;
    Some(dt.assume_utc().unix_timestamp())
}

/// The start of a body, for error messages.
pub fn snippet(body: &str) -> String {
    let body = body.trim();
    match body.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &body[..i]),
        None => body.to_string(),
    }
}

/// A plain GET for the few things tocsin fetches rather than sends (SNS signing certificates and
/// subscription confirmations): the body on 2xx, an error naming the status or transport problem
/// otherwise. At most `limit` bytes are read.
pub async fn get(url: &str, timeout: Duration, limit: usize) -> Result<Vec<u8>, String> {
    let client = shared();
    let response = client
        .reqwest()
        .get(url)
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| match transport_error(e) {
            Outcome::Retry { error, .. } | Outcome::Permanent { error } => error,
            Outcome::Sent { .. } => "no answer".to_string(),
        })?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("GET answered {status}"));
    }
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(format!("the answer is larger than {limit} bytes"));
    }
    let (bytes, cut) = read_limited(response, limit)
        .await
        .map_err(|e| e.to_string())?;
    if cut {
        return Err(format!("the answer is larger than {limit} bytes"));
    }
    Ok(bytes)
}

/// Reads at most `limit` bytes of a body, chunk by chunk, and stops there: a server that answers with
/// gigabytes costs `limit` bytes of memory, not the whole answer. `true` when the body was longer.
async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let mut out = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = limit - out.len();
        if chunk.len() > room {
            out.extend_from_slice(&chunk[..room]);
            return Ok((out, true));
        }
        out.extend_from_slice(&chunk);
    }
    Ok((out, false))
}

/// One client for those fetches, made on first use.
fn shared() -> &'static Client {
    static CLIENT: std::sync::OnceLock<Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(Client::new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderValue, RETRY_AFTER};

    fn answer(status: u16, retry: Option<&str>) -> Answer {
        let mut headers = HeaderMap::new();
        if let Some(r) = retry {
            headers.insert(RETRY_AFTER, HeaderValue::from_str(r).unwrap());
        }
        Answer {
            status: StatusCode::from_u16(status).unwrap(),
            headers,
            body: "nope".into(),
        }
    }

    #[test]
    fn statuses_are_classified() {
        assert_eq!(classify(&answer(200, None)), None);
        assert!(matches!(
            classify(&answer(429, Some("7"))),
            Some(Outcome::Retry { after: Some(d), .. }) if d == Duration::from_secs(7)
        ));
        assert!(matches!(
            classify(&answer(503, None)),
            Some(Outcome::Retry { after: None, .. })
        ));
        assert!(matches!(
            classify(&answer(404, None)),
            Some(Outcome::Permanent { .. })
        ));
    }

    #[test]
    fn retry_after_reads_fractions_and_dates() {
        assert_eq!(
            retry_after(&answer(429, Some("1.5")).headers),
            Some(Duration::from_millis(1500))
        );
        // A date in the past means "now".
        assert_eq!(
            retry_after(&answer(429, Some("Sun, 06 Nov 1994 08:49:37 GMT")).headers),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(&answer(429, Some("soon")).headers), None);
    }

    /// A server that answers 500 with a body that never ends (chunk after chunk until the client
    /// goes away). Reading the whole answer first would never finish.
    async fn endless_server() -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = sock.read(&mut buf).await;
            let head = "HTTP/1.1 500 Internal Server Error\r\ntransfer-encoding: chunked\r\n\r\n";
            if sock.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let chunk = format!("{:x}\r\n{}\r\n", 8192, "x".repeat(8192));
            // Bounded all the same: 1 GiB at most, stopping as soon as the client closes.
            for _ in 0..(1 << 17) {
                if sock.write_all(chunk.as_bytes()).await.is_err() {
                    return;
                }
            }
        });
        format!("http://{addr}/")
    }

    #[tokio::test]
    async fn answers_are_read_up_to_the_limit_and_no_further() {
        let url = endless_server().await;
        let answer = execute(reqwest::Client::new().post(url), Duration::from_secs(600))
            .await
            .unwrap();
        assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(answer.body.len(), MAX_BODY);
    }
}
