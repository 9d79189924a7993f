//! The HTTP listener's limits, black-box over raw TCP: half-sent headers (slowloris), idle keep-alive
//! connections, stalled bodies and silent connections are closed after their configured timeouts,
//! and at the connection cap new connections wait until a slot frees instead of piling up. The
//! timeouts are configured small; each test waits for the server to close the socket (under a
//! deadline that only catches a hang), never for a fixed time.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Reads until the server closes the connection; returns what it sent. Panics if it stays open.
async fn read_until_closed(conn: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("the server kept the connection open");
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn half_sent_headers_are_closed_after_the_header_timeout() {
    let app = spawn_app_with("http: {header_timeout: 300ms}\n").await;
    let mut conn = connect(&app).await;
    // Headers that never end, as a slowloris client sends them.
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: tocsin.test\r\nX-Slow: 1\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut conn).await;
    assert!(!answer.contains("200 OK"), "{answer}");
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    let app = spawn_app_with("http: {header_timeout: 300ms}\n").await;
    let mut conn = connect(&app).await;
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: tocsin.test\r\n\r\n")
        .await
        .unwrap();
    // The answer, then nothing more is asked: the connection closes instead of waiting forever.
    let answer = read_until_closed(&mut conn).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn a_stalled_body_gets_408_after_the_request_timeout() {
    let app = spawn_app_with("http: {request_timeout: 300ms}\n").await;
    let mut conn = connect(&app).await;
    conn.write_all(
        format!(
            "POST /ingest/hooks HTTP/1.1\r\nHost: tocsin.test\r\nx-tocsin-token: {HOOK_TOKEN}\r\n\
             content-type: application/json\r\ncontent-length: 1000\r\n\r\n{{\"title\": \"slow"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let answer = read_until_closed(&mut conn).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"error\":\"request_timeout\""), "{answer}");
    assert!(answer.contains("http.request_timeout"), "{answer}");
}

#[tokio::test]
async fn a_connection_on_which_nothing_moves_is_closed_after_the_idle_timeout() {
    // The request timeout is long: only the idle timeout can end this.
    let app = spawn_app_with("http: {idle_timeout: 300ms, request_timeout: 1h}\n").await;
    let mut conn = connect(&app).await;
    conn.write_all(
        format!(
            "POST /ingest/hooks HTTP/1.1\r\nHost: tocsin.test\r\nx-tocsin-token: {HOOK_TOKEN}\r\n\
             content-type: application/json\r\ncontent-length: 1000\r\n\r\n{{\"title\": \"slow"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let answer = read_until_closed(&mut conn).await;
    assert!(!answer.contains(" 202 "), "{answer}");
}

#[tokio::test]
async fn at_the_connection_cap_a_new_connection_waits_for_a_slot_and_is_then_served() {
    let app = spawn_app_with("http: {max_connections: 2, header_timeout: 500ms}\n").await;
    // Two connections that say nothing take both slots.
    let idle = [connect(&app).await, connect(&app).await];
    // A third is not served until the server has closed one of them (header timeout).
    let r = app
        .client
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // A direct non-blocking read: `WouldBlock` on an open, quiet socket; 0 (or a reset) once closed.
    let closed = idle
        .into_iter()
        .map(|c| {
            let mut c = c.into_std().unwrap();
            let got = std::io::Read::read(&mut c, &mut [0u8; 16]);
            !matches!(got, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
        })
        .filter(|closed| *closed)
        .count();
    assert!(closed >= 1, "served while both slots were held");
}
