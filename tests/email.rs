//! Email for members who are not online, against a real SMTP server (aiosmtpd, from PyPI, installed by
//! scripts/fetch-smtp.sh) and tocsin's own inbound SMTP listener. The mailer is driven step by step on
//! the manual clock: no sleeping.

mod common;

use std::time::Duration;

use common::smtp::{Received, SmtpServer};
use common::*;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::{json, Value};

const MIN: Duration = Duration::from_secs(60);

/// alice, bob and carol with addresses, all three in room `ops` (a webhook nobody answers: chat is not
/// under test here), routes from `routes`, and `email:` pointing at `smtp_port`.
fn yaml(dir: &std::path::Path, smtp_port: u16, routes: &str, extra: &str) -> String {
    format!(
        "listen: 127.0.0.1:0\n\
         public_url: https://tocsin.test\n\
         storage: {storage}\n\
         plugin_cache: {cache}\n\
         sources:\n  hooks: {{kind: generic, auth: {{token: {HOOK_TOKEN}}}}}\n\
         members:\n  \
           alice: {{role: admin, token: {ADMIN}, email: alice@example.test}}\n  \
           bob: {{role: editor, token: {EDITOR}, email: bob@example.test}}\n  \
           carol: {{role: viewer, token: {VIEWER}, email: carol@example.test}}\n\
         groups:\n  oncall: [alice, bob]\n\
         tickets: {{reopen_window: 1h}}\n\
         rooms:\n  ops:\n    sink: {{kind: webhook, url: \"http://127.0.0.1:9/hook\"}}\n    members: [alice, bob, carol]\n\
         routes:\n{routes}\
         email:\n  \
           smtp: smtp://127.0.0.1:{smtp_port}\n  \
           from: \"tocsin <alerts@tocsin.test>\"\n  \
           secret: a-test-secret-of-32-characters!!\n  \
           delay: 2m\n  \
           batch_window: 10m\n  \
           reply_ttl: 1h\n  \
           inbound: {{listen: \"127.0.0.1:0\", domain: in.tocsin.test, trust: {{peers: [127.0.0.1]}}}}\n\
         {extra}",
        storage = common::storage::storage_url(&dir.join("tocsin.db")),
        cache = dir.join("plugin-cache").display(),
    )
}

/// Critical alerts mention alice and bob; everything else goes to ops unmentioned.
const ROUTES: &str =
    "  - {match: {severity: critical}, rooms: [ops], mention: [alice, bob]}\n  - {rooms: [ops]}\n";

async fn spawn(smtp_port: u16, routes: &str, extra: &str) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let yaml = yaml(dir.path(), smtp_port, routes, extra);
    spawn_app_with_yaml(dir, yaml).await
}

fn alert(title: &str, severity: &str, status: &str) -> Value {
    json!({"title": title, "status": status, "severity": severity, "labels": {"host": title}})
}

async fn fire(app: &TestApp, title: &str, severity: &str) {
    assert_eq!(
        app.hook(alert(title, severity, "firing")).await.status(),
        202
    );
    app.process().await;
}

async fn set_presence(app: &TestApp, member: &str, token: &str, state: &str) {
    let r = app
        .client
        .put(format!("{}/api/members/{member}/presence", app.base))
        .bearer_auth(token)
        .json(&json!({"state": state}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

async fn mail(app: &TestApp) -> usize {
    app.app
        .mailer
        .as_ref()
        .expect("email is configured")
        .step()
        .await
        .unwrap()
}

/// The timeline entries of one kind on ticket `T-n`, as their texts.
async fn entries(app: &TestApp, ticket: &str, kind: &str) -> Vec<String> {
    app.entries_of(ticket, kind)
        .await
        .into_iter()
        .map(|e| e["text"].as_str().unwrap().to_string())
        .collect()
}

fn to(m: &Received) -> String {
    m.to.join(",")
}

fn bracketed(id: &str) -> String {
    format!("<{}>", id.trim_start_matches('<').trim_end_matches('>'))
}

#[tokio::test]
async fn an_offline_member_is_emailed_after_the_delay_and_later_tickets_come_as_one_digest() {
    let smtp = SmtpServer::start();
    let app = spawn(smtp.port, ROUTES, "").await;
    set_presence(&app, "bob", EDITOR, "online").await;

    fire(&app, "db1", "critical").await;
    let scheduled = entries(&app, "T-1", "email_scheduled").await;
    assert_eq!(scheduled.len(), 1, "{scheduled:?}");
    assert!(
        scheduled[0].starts_with("Email to alice due at 2026-11-22T12:02:00"),
        "{scheduled:?}"
    );

    // Before the delay: nothing.
    app.advance(MIN);
    assert_eq!(mail(&app).await, 0);
    assert!(smtp.messages().is_empty());

    app.advance(MIN);
    assert_eq!(mail(&app).await, 1);
    let got = smtp.messages();
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(to(m), "alice@example.test");
    assert_eq!(m.subject, "[tocsin T-1] db1");
    assert!(m.header("Message-ID").is_some());
    assert_eq!(m.header("In-Reply-To"), None);
    assert_eq!(m.header("Auto-Submitted"), Some("auto-generated"));
    assert_eq!(
        m.header("List-Unsubscribe-Post"),
        Some("List-Unsubscribe=One-Click")
    );
    let unsubscribe = m.header("List-Unsubscribe").unwrap();
    assert!(
        unsubscribe.starts_with("<https://tocsin.test/unsubscribe/alice."),
        "{unsubscribe}"
    );
    let reply_to = m.header("Reply-To").unwrap();
    assert!(reply_to.contains("reply+1.alice."), "{reply_to}");
    assert!(reply_to.contains("@in.tocsin.test"), "{reply_to}");
    assert!(
        m.text.contains("https://tocsin.test/tickets/T-1"),
        "{}",
        m.text
    );
    assert_eq!(entries(&app, "T-1", "emailed").await.len(), 1);

    // Two more within alice's batch window (10 minutes from the first email): one digest when it ends.
    app.advance(MIN);
    fire(&app, "db2", "critical").await;
    fire(&app, "db3", "critical").await;
    app.advance(2 * MIN);
    assert_eq!(mail(&app).await, 0, "the batch window is still open");
    app.advance(7 * MIN);
    assert_eq!(mail(&app).await, 1);
    let got = smtp.messages();
    assert_eq!(got.len(), 2, "one digest, not two emails");
    let digest = &got[1];
    assert_eq!(to(digest), "alice@example.test");
    assert!(digest.subject.contains("2 tickets"), "{}", digest.subject);
    assert!(
        digest.text.contains("T-2") && digest.text.contains("T-3"),
        "{}",
        digest.text
    );
    for t in ["T-2", "T-3"] {
        let sent = entries(&app, t, "emailed").await;
        assert_eq!(sent.len(), 1);
        assert!(sent[0].contains("digest of 2 tickets"), "{sent:?}");
    }
    // bob was online the whole time.
    assert!(got.iter().all(|m| to(m) != "bob@example.test"));
}

#[tokio::test]
async fn coming_online_or_an_ack_before_the_delay_cancels_the_email_and_says_why() {
    let smtp = SmtpServer::start();
    let routes = "  - {match: {host: db1}, rooms: [ops], mention: [alice]}\n  - {match: {host: db2}, rooms: [ops], mention: [carol]}\n";
    let app = spawn(smtp.port, routes, "").await;
    fire(&app, "db1", "warning").await;
    fire(&app, "db2", "warning").await;
    assert_eq!(entries(&app, "T-1", "email_scheduled").await.len(), 1);
    assert_eq!(entries(&app, "T-2", "email_scheduled").await.len(), 1);

    app.advance(MIN);
    set_presence(&app, "alice", ADMIN, "online").await;
    let r = app.api_post("/api/tickets/T-2/ack", EDITOR, None).await;
    assert_eq!(r.status(), 200);

    app.advance(2 * MIN);
    assert_eq!(mail(&app).await, 0);
    assert!(smtp.messages().is_empty());
    let t1 = entries(&app, "T-1", "email_cancelled").await;
    assert_eq!(t1.len(), 1);
    assert!(
        t1[0].starts_with("Email to alice not sent: alice is online (api"),
        "{t1:?}"
    );
    let t2 = entries(&app, "T-2", "email_cancelled").await;
    assert_eq!(
        t2,
        ["Email to carol not sent: the ticket was acknowledged by bob."]
    );
}

#[tokio::test]
async fn a_second_email_about_a_ticket_threads_with_the_first() {
    let smtp = SmtpServer::start();
    let extra = "";
    let app = spawn(smtp.port, ROUTES, extra).await;
    fire(&app, "db1", "critical").await;
    app.advance(2 * MIN);
    assert_eq!(mail(&app).await, 2, "alice and bob are both offline");

    // Resolved, then firing again within the reopen window: the same ticket, mentioned again.
    app.hook(alert("db1", "critical", "resolved")).await;
    app.process().await;
    app.advance(15 * MIN);
    fire(&app, "db1", "critical").await;
    assert_eq!(entries(&app, "T-1", "email_scheduled").await.len(), 4);
    app.advance(2 * MIN);
    assert_eq!(mail(&app).await, 2);

    let got = smtp.messages();
    let alice: Vec<&Received> = got
        .iter()
        .filter(|m| to(m) == "alice@example.test")
        .collect();
    assert_eq!(alice.len(), 2);
    let first_id = bracketed(alice[0].header("Message-ID").unwrap());
    let second_id = bracketed(alice[1].header("Message-ID").unwrap());
    assert_ne!(first_id, second_id);
    assert_eq!(
        alice[1].header("In-Reply-To").map(bracketed),
        Some(first_id.clone())
    );
    assert!(alice[1].header("References").unwrap().contains(&first_id));
    assert_eq!(alice[1].subject, "Re: [tocsin T-1] db1");
}

#[tokio::test]
async fn here_emails_nobody_and_all_emails_exactly_the_members_not_online() {
    let smtp = SmtpServer::start();
    let routes = "  - {match: {severity: critical}, rooms: [ops], mention: [here]}\n  - {match: {severity: warning}, rooms: [ops], mention: [all]}\n  - {match: {severity: error}, rooms: [ops], mention: [oncall]}\n";
    let app = spawn(smtp.port, routes, "").await;
    set_presence(&app, "bob", EDITOR, "online").await;

    fire(&app, "db1", "critical").await;
    assert!(entries(&app, "T-1", "email_scheduled").await.is_empty());

    fire(&app, "db2", "warning").await;
    let scheduled = entries(&app, "T-2", "email_scheduled").await;
    assert_eq!(scheduled.len(), 2, "{scheduled:?}");
    assert!(scheduled.iter().any(|s| s.starts_with("Email to alice")));
    assert!(scheduled.iter().any(|s| s.starts_with("Email to carol")));
    assert!(scheduled.iter().all(|s| s.contains("@all in room ops")));

    // A group mentions its members: alice (offline) gets one, bob (online) none.
    fire(&app, "db3", "error").await;
    let scheduled = entries(&app, "T-3", "email_scheduled").await;
    assert_eq!(scheduled.len(), 1, "{scheduled:?}");
    assert!(
        scheduled[0].contains("mentioned through group oncall"),
        "{scheduled:?}"
    );

    app.advance(2 * MIN);
    mail(&app).await;
    let mut recipients: Vec<String> = smtp.messages().iter().map(to).collect();
    recipients.sort();
    // alice's two tickets came due together: one digest.
    assert_eq!(recipients, ["alice@example.test", "carol@example.test"]);
}

/// Sends `body` from `from` to `rcpt` through tocsin's inbound listener at `port`.
async fn reply(
    port: u16,
    from: &str,
    rcpt: &str,
    body: &str,
) -> Result<(), lettre::transport::smtp::Error> {
    let mailer = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(port)
        .build();
    let message = Message::builder()
        .from(from.parse().unwrap())
        .to(rcpt.parse().unwrap())
        .subject("Re: [tocsin T-1] db1")
        .body(body.to_string())
        .unwrap();
    mailer.send(message).await.map(|_| ())
}

async fn start_inbound(app: &TestApp) -> (u16, tokio::sync::watch::Sender<bool>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::watch::channel(false);
    let inbound = app.app.inbound.clone().expect("inbound is configured");
    tokio::spawn(inbound.serve(listener, rx));
    (port, tx)
}

#[tokio::test]
async fn a_reply_by_email_becomes_a_note_and_ack_acks_while_forged_and_expired_addresses_are_refused(
) {
    let smtp = SmtpServer::start();
    let app = spawn(smtp.port, ROUTES, "").await;
    let (port, _stop) = start_inbound(&app).await;
    fire(&app, "db1", "critical").await;
    app.advance(2 * MIN);
    mail(&app).await;
    let got = smtp.messages();
    let alice = got.iter().find(|m| to(m) == "alice@example.test").unwrap();
    let address = alice
        .header("Reply-To")
        .unwrap()
        .trim_matches(['<', '>'])
        .to_string();

    // From the wrong sender: refused.
    let err = reply(port, "mallory@example.test", &address, "resolve")
        .await
        .unwrap_err();
    assert!(err.is_permanent(), "{err}");
    // Forged: one character of the signature changed.
    let at = address.find('@').unwrap();
    let mut forged = address.clone().into_bytes();
    forged[at - 1] = if forged[at - 1] == b'0' { b'1' } else { b'0' };
    let forged = String::from_utf8(forged).unwrap();
    let err = reply(port, "alice@example.test", &forged, "resolve")
        .await
        .unwrap_err();
    assert!(err.is_permanent(), "{err}");
    let t = app
        .api_get("/api/tickets/T-1", VIEWER)
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(t["state"], "open", "refused replies changed nothing");

    let body = "ack\r\nLooking at it now, the disk is at 99%.\r\n\r\nOn Sun, 22 Nov 2026 at 12:02, tocsin <alerts@tocsin.test> wrote:\r\n> [tocsin T-1] db1\r\n> FIRING\r\n";
    reply(port, "Alice <alice@example.test>", &address, body)
        .await
        .unwrap();
    let t = app
        .api_get("/api/tickets/T-1", VIEWER)
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(t["state"], "acked");
    let timeline = app.timeline("T-1").await;
    let acked = timeline.iter().find(|e| e["kind"] == "acked").unwrap();
    assert_eq!(acked["actor"], "member:alice");
    let note = timeline.iter().find(|e| e["kind"] == "note").unwrap();
    assert_eq!(note["text"], "Looking at it now, the disk is at 99%.");
    assert_eq!(note["actor"], "member:alice");
    assert_eq!(
        note["visibility"], "public",
        "mirrored into the room's thread"
    );

    // The address expires after reply_ttl (1h).
    app.advance(61 * MIN);
    let err = reply(port, "alice@example.test", &address, "resolve")
        .await
        .unwrap_err();
    assert!(err.is_permanent(), "{err}");
    let t = app
        .api_get("/api/tickets/T-1", VIEWER)
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(t["state"], "acked");
}

#[tokio::test]
async fn the_unsubscribe_link_stops_further_email_and_says_so() {
    let smtp = SmtpServer::start();
    let app = spawn(smtp.port, ROUTES, "").await;
    set_presence(&app, "bob", EDITOR, "online").await;
    fire(&app, "db1", "critical").await;
    app.advance(2 * MIN);
    assert_eq!(mail(&app).await, 1);
    let link = smtp.messages()[0]
        .header("List-Unsubscribe")
        .unwrap()
        .trim_matches(['<', '>'])
        .replace("https://tocsin.test", &app.base);

    // A scheduled email is waiting when alice unsubscribes.
    fire(&app, "db2", "critical").await;
    assert_eq!(entries(&app, "T-2", "email_scheduled").await.len(), 1);

    // Following the link changes nothing by itself (link scanners follow links)...
    let page = app.client.get(&link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Unsubscribe alice"));
    // ...the one-click POST does, as mail providers send it (RFC 8058).
    let done = app
        .client
        .post(&link)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    assert!(done.text().await.unwrap().contains("You are unsubscribed"));
    let again = app
        .client
        .get(&link)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(again.contains("is unsubscribed"), "{again}");

    app.advance(20 * MIN);
    assert_eq!(mail(&app).await, 0);
    let cancelled = entries(&app, "T-2", "email_cancelled").await;
    assert_eq!(
        cancelled,
        ["Email to alice not sent: alice unsubscribed from email."]
    );
    fire(&app, "db3", "critical").await;
    assert!(entries(&app, "T-3", "email_scheduled").await.is_empty());
    assert_eq!(smtp.messages().len(), 1);

    // A forged link is refused.
    let forged = format!("{}/unsubscribe/bob.0000000000", app.base);
    assert_eq!(app.client.post(&forged).send().await.unwrap().status(), 404);
}

#[tokio::test]
async fn with_smtp_down_emails_are_retried_and_sent_once_when_it_returns() {
    let port = free_port();
    let app = spawn(port, ROUTES, "").await;
    set_presence(&app, "bob", EDITOR, "online").await;
    fire(&app, "db1", "critical").await;
    app.advance(2 * MIN);
    assert_eq!(mail(&app).await, 0);
    let failed = entries(&app, "T-1", "email_failed").await;
    assert_eq!(failed.len(), 1);
    assert!(failed[0].contains("Trying again at"), "{failed:?}");

    // Still down at the next attempt: another failure, still nothing lost.
    app.advance(MIN);
    assert_eq!(mail(&app).await, 0);
    assert_eq!(entries(&app, "T-1", "email_failed").await.len(), 2);

    let smtp = SmtpServer::start_on(port);
    app.advance(5 * MIN);
    assert_eq!(mail(&app).await, 1);
    app.advance(60 * MIN);
    assert_eq!(mail(&app).await, 0);
    let got = smtp.messages();
    assert_eq!(got.len(), 1, "sent once");
    assert_eq!(to(&got[0]), "alice@example.test");
    assert_eq!(entries(&app, "T-1", "emailed").await.len(), 1);
}
