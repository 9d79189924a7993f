//! The email sink against a real SMTP server (aiosmtpd, installed by `scripts/fetch-smtp.sh`): every
//! header a mail client threads, filters and unsubscribes by, one multipart/alternative body with text
//! and HTML, hostile alert text arriving inert, and how failures are classified (nothing listening or
//! the server going away is a retry; a 5xx or a recipient that does not parse is permanent).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::smtp::{Received, SmtpServer};
use tocsin::domain::alert::{Labels, Severity};
use tocsin::domain::mail::{MailContent, MailReason, MailTicket};
use tocsin::domain::ticket::TicketState;
use tocsin::domain::time::Timestamp;
use tocsin::sinks::email::{Email, MailOutcome, Mailer, SmtpMailer, SmtpSettings};

const ROOT_ID: &str = "t42@tocsin.example";

fn mailer(url: &str) -> SmtpMailer {
    SmtpMailer::new(&SmtpSettings {
        url: url.into(),
        username: None,
        password: None,
        from: "tocsin <alerts@tocsin.example>".into(),
        timeout: Duration::from_secs(5),
        pool_size: 4,
    })
    .expect("valid settings")
}

fn ticket(number: i64, title: &str) -> MailTicket {
    let mut labels = Labels::new();
    labels.insert("alertname".into(), "DiskFull".into());
    labels.insert("instance".into(), "db1:9100".into());
    MailTicket {
        number,
        title: title.into(),
        state: TicketState::Open,
        severity: Severity::Critical,
        source: "prom".into(),
        labels,
        summary: Some("Disk /var is 97% full.".into()),
        link: format!("https://tocsin.example/tickets/{number}"),
        reason: MailReason::Member,
        mentioned_at: Timestamp::from_millis(1_795_315_160_653),
    }
}

/// The first email of T-42's thread, to bob.
fn email(title: &str) -> Email {
    Email {
        to: "bob@example.test".into(),
        message_id: ROOT_ID.into(),
        in_reply_to: None,
        references: vec![],
        reply_to: Some("reply+abc.def@in.tocsin.example".into()),
        unsubscribe_url: "https://tocsin.example/u/tok123".into(),
        list_id: "tickets.tocsin.example".into(),
        ticket: Some(42),
        follow_up: false,
        content: MailContent {
            member: "bob".into(),
            tickets: vec![ticket(42, title)],
            unsubscribe_link: "https://tocsin.example/u/tok123".into(),
            reply_enabled: true,
        },
    }
}

/// A later email in T-42's thread.
fn follow_up(seq: u32, references: &[&str]) -> Email {
    Email {
        message_id: format!("t42.{seq}.ab12@tocsin.example"),
        in_reply_to: Some(ROOT_ID.into()),
        references: references.iter().map(|r| r.to_string()).collect(),
        follow_up: true,
        ..email("disk full on db1")
    }
}

async fn send_ok(mailer: &SmtpMailer, email: &Email, server: &SmtpServer) {
    let outcome = mailer.send(email).await;
    assert_eq!(
        outcome,
        MailOutcome::Sent,
        "aiosmtpd log:\n{}",
        server.log()
    );
}

fn only(server: &SmtpServer) -> Received {
    let mut messages = server.messages();
    assert_eq!(messages.len(), 1, "{messages:#?}");
    messages.remove(0)
}

#[tokio::test]
async fn an_email_arrives_with_every_header_and_both_parts() {
    let server = SmtpServer::start();
    let mailer = mailer(&server.url());
    send_ok(&mailer, &email("disk full on db1"), &server).await;

    let m = only(&server);
    assert_eq!(m.to, ["bob@example.test"]);
    assert_eq!(m.subject, "[tocsin T-42] disk full on db1");
    let expect = [
        ("From", "tocsin <alerts@tocsin.example>"),
        ("To", "bob@example.test"),
        ("Message-ID", "<t42@tocsin.example>"),
        ("Reply-To", "reply+abc.def@in.tocsin.example"),
        ("Auto-Submitted", "auto-generated"),
        ("List-Id", "<tickets.tocsin.example>"),
        ("List-Unsubscribe", "<https://tocsin.example/u/tok123>"),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ("X-Tocsin-Ticket", "T-42"),
        ("MIME-Version", "1.0"),
    ];
    for (name, value) in expect {
        assert_eq!(m.header(name), Some(value), "{name} in {:#?}", m.headers);
    }
    assert!(m.header("Date").is_some_and(|d| !d.is_empty()));
    // The first email of a thread points at nothing.
    assert_eq!(m.header("In-Reply-To"), None);
    assert_eq!(m.header("References"), None);

    // Exactly one Content-Type at the top (lettre emits two if one is also set by hand), and it is the
    // multipart/alternative holding a text and an HTML part.
    let types = m.headers_named("Content-Type");
    assert_eq!(types.len(), 1, "{types:?}");
    assert!(types[0].starts_with("multipart/alternative;"), "{types:?}");
    assert!(m.raw.contains("Content-Type: text/plain; charset=utf-8"));
    assert!(m.raw.contains("Content-Type: text/html; charset=utf-8"));

    assert!(m.text.contains("Hello bob,"), "{}", m.text);
    assert!(m.text.contains("T-42 [OPEN, critical]\ndisk full on db1\n"));
    assert!(m
        .text
        .contains("Open T-42: https://tocsin.example/tickets/42"));
    assert!(m
        .text
        .contains("Why you get this: mentioned at 2026-11-22 02:39:20 UTC"));
    assert!(m.text.contains(
        "Reply to this email to add a note to T-42; a first line of `ack` or `resolve` does that."
    ));
    assert!(m
        .text
        .contains("Unsubscribe: https://tocsin.example/u/tok123"));
    assert!(m.html.starts_with("<!DOCTYPE html>"), "{}", m.html);
    assert!(m
        .html
        .contains("<a href=\"https://tocsin.example/tickets/42\""));
    assert!(m.html.contains("<code>alertname</code>: DiskFull"));
    assert!(m
        .html
        .contains("<a href=\"https://tocsin.example/u/tok123\""));
}

#[tokio::test]
async fn later_emails_thread_under_the_first() {
    let server = SmtpServer::start();
    let mailer = mailer(&server.url());
    send_ok(&mailer, &email("disk full on db1"), &server).await;
    send_ok(&mailer, &follow_up(2, &[ROOT_ID]), &server).await;
    let second_id = "t42.2.ab12@tocsin.example";
    send_ok(&mailer, &follow_up(3, &[ROOT_ID, second_id]), &server).await;

    let messages = server.messages();
    assert_eq!(messages.len(), 3);
    let (first, second, third) = (&messages[0], &messages[1], &messages[2]);
    assert_eq!(first.subject, "[tocsin T-42] disk full on db1");
    // The same subject with `Re: `: Gmail threads on subject and References together.
    assert_eq!(second.subject, "Re: [tocsin T-42] disk full on db1");
    assert_eq!(third.subject, second.subject);

    assert_eq!(
        second.header("Message-ID"),
        Some("<t42.2.ab12@tocsin.example>")
    );
    assert_eq!(second.header("In-Reply-To"), Some("<t42@tocsin.example>"));
    assert_eq!(second.header("References"), Some("<t42@tocsin.example>"));
    assert_eq!(third.header("In-Reply-To"), Some("<t42@tocsin.example>"));
    assert_eq!(
        third.header("References"),
        Some("<t42@tocsin.example> <t42.2.ab12@tocsin.example>")
    );
    for m in &messages {
        assert_eq!(m.header("X-Tocsin-Ticket"), Some("T-42"));
        assert_eq!(m.headers_named("Content-Type").len(), 1);
    }
}

#[tokio::test]
async fn a_digest_lists_its_tickets() {
    let server = SmtpServer::start();
    let mailer = mailer(&server.url());
    let mut digest = email("unused");
    digest.message_id = "digest.1.cd34@tocsin.example".into();
    digest.ticket = None;
    digest.reply_to = None;
    digest.content.tickets = vec![
        ticket(42, "disk full on db1"),
        ticket(43, "db2 down"),
        ticket(44, "queue backlog"),
    ];
    send_ok(&mailer, &digest, &server).await;

    let m = only(&server);
    assert_eq!(m.subject, "[tocsin] 3 tickets need you: T-42, T-43, T-44");
    assert_eq!(m.header("X-Tocsin-Ticket"), None);
    assert_eq!(m.header("Reply-To"), None);
    assert!(!m.text.contains("Reply to this email"));
    for line in [
        "1. T-42 [OPEN, critical]: disk full on db1",
        "2. T-43 [OPEN, critical]: db2 down",
        "3. T-44 [OPEN, critical]: queue backlog",
    ] {
        assert!(m.text.contains(line), "{line} in\n{}", m.text);
    }
    assert_eq!(
        m.html
            .matches("<a href=\"https://tocsin.example/tickets/")
            .count(),
        3
    );
}

#[tokio::test]
async fn hostile_alert_text_arrives_inert() {
    let server = SmtpServer::start();
    let mailer = mailer(&server.url());
    let title = "<script>alert(1)</script> <img src=x onerror=alert(1)> @channel";
    let mut hostile = email(title);
    hostile.content.tickets[0]
        .labels
        .insert("job".into(), "<b onmouseover=\"x()\">api</b>".into());
    hostile.content.tickets[0].summary = Some("</p><iframe src=javascript:alert(2)>".into());
    hostile.content.tickets[0].link = "javascript:alert(3)".into();
    send_ok(&mailer, &hostile, &server).await;
    // A title that tries to add a header of its own.
    send_ok(
        &mailer,
        &Email {
            message_id: "t42.9.ef56@tocsin.example".into(),
            ..email("disk full\r\nBcc: eve@example.test\r\n\r\nforged body")
        },
        &server,
    )
    .await;

    let messages = server.messages();
    assert_eq!(messages.len(), 2);
    let m = &messages[0];
    for bad in [
        "<script",
        "<img",
        "<iframe",
        "<b ",
        "@channel",
        "href=\"javascript",
    ] {
        assert!(
            !m.html.contains(bad),
            "{bad:?} in the HTML part:\n{}",
            m.html
        );
    }
    assert!(m.html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(m.html.contains("&lt;img src=x onerror=alert(1)&gt;"));
    assert!(m
        .html
        .contains("&lt;b onmouseover=&quot;x()&quot;&gt;api&lt;/b&gt;"));
    // The text part is text: the title is shown as it is, and the subject carries it whole.
    assert!(m.text.contains(title));
    assert_eq!(m.subject, format!("[tocsin T-42] {title}"));

    let forged = &messages[1];
    assert_eq!(forged.header("Bcc"), None);
    assert_eq!(
        forged.subject,
        "[tocsin T-42] disk full Bcc: eve@example.test forged body"
    );
    // aiosmtpd records the envelope recipients: only bob.
    assert_eq!(forged.header("X-RcptTo"), Some("bob@example.test"));
}

#[tokio::test]
async fn nothing_listening_is_retry_until_the_server_comes_back() {
    // A port nobody listens on: bound, noted and released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mailer = mailer(&format!("smtp://127.0.0.1:{port}"));
    match mailer.send(&email("disk full on db1")).await {
        MailOutcome::Retry { error } => assert!(error.contains(&port.to_string()), "{error}"),
        other => panic!("expected Retry, got {other:?}"),
    }

    let server = SmtpServer::start_on(port);
    send_ok(&mailer, &email("disk full on db1"), &server).await;
    assert_eq!(only(&server).subject, "[tocsin T-42] disk full on db1");
}

#[tokio::test]
async fn a_pooled_connection_to_a_server_that_went_away_is_not_reused() {
    let mut server = SmtpServer::start();
    let port = server.port;
    let mailer = mailer(&server.url());
    send_ok(&mailer, &email("first"), &server).await;

    server.stop();
    assert!(
        matches!(
            mailer.send(&email("while down")).await,
            MailOutcome::Retry { .. }
        ),
        "a stopped server is a retry"
    );

    let server = SmtpServer::start_on(port);
    send_ok(&mailer, &email("after restart"), &server).await;
    assert_eq!(only(&server).subject, "[tocsin T-42] after restart");
}

#[tokio::test]
async fn concurrent_sends_share_the_pool() {
    let server = SmtpServer::start();
    let mailer = Arc::new(mailer(&server.url()));
    let sends: Vec<_> = (0..8)
        .map(|i| {
            let mailer = Arc::clone(&mailer);
            tokio::spawn(async move {
                let mut e = email(&format!("alert {i}"));
                e.message_id = format!("t42.{i}.pool@tocsin.example");
                mailer.send(&e).await
            })
        })
        .collect();
    for send in sends {
        assert_eq!(send.await.expect("send task"), MailOutcome::Sent);
    }
    let mut subjects: Vec<String> = server.messages().into_iter().map(|m| m.subject).collect();
    subjects.sort();
    let mut expected: Vec<String> = (0..8).map(|i| format!("[tocsin T-42] alert {i}")).collect();
    expected.sort();
    assert_eq!(subjects, expected);
}

#[tokio::test]
async fn a_5xx_refusal_is_permanent() {
    let server = SmtpServer::start();
    let mailer = mailer(&server.url());
    server.break_delivery();
    match mailer.send(&email("disk full on db1")).await {
        MailOutcome::Permanent { error } => assert!(error.contains("500"), "{error}"),
        other => panic!(
            "expected Permanent, got {other:?}; aiosmtpd log:\n{}",
            server.log()
        ),
    }
}

#[tokio::test]
async fn a_recipient_that_does_not_parse_is_permanent() {
    let server = SmtpServer::start();
    let mailer = mailer(&server.url());
    for to in [
        "not an address",
        "bob@@example.test",
        "bob@example.test\r\nBcc: eve@example.test",
        "",
    ] {
        let mut e = email("disk full on db1");
        e.to = to.into();
        match mailer.send(&e).await {
            MailOutcome::Permanent { error } => assert!(error.contains("recipient"), "{error}"),
            other => panic!("{to:?}: expected Permanent, got {other:?}"),
        }
    }
    assert!(server.messages().is_empty());
}
