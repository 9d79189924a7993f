//! Delivery end to end against a real Matrix homeserver (Synapse, installed by
//! `scripts/fetch-synapse.sh`): an alert becomes a message in the room that pings the routed member,
//! later changes go to its thread, resolving edits the first message, and nothing is posted twice.
//! ChatOps: the bot reads its room, runs `ack T-1`, and turns thread replies into notes on the ticket.

mod common;

use common::synapse::Synapse;
use common::*;
use serde_json::json;

#[tokio::test]
async fn tickets_reach_a_real_matrix_room_with_mentions_threads_and_edits() {
    let hs = Synapse::start().await;
    let bot = hs.register("tocsin", "bot-password-1", false).await;
    let alice = hs.register("alice", "alice-password-1", false).await;
    let room = hs.create_room(&bot, &[&alice]).await;
    hs.join(&alice, &room).await;

    let app = spawn_app_sources(
        "sources:\n  hooks: {kind: generic}\n",
        &format!(
            "rooms:\n  ops:\n    sink: {{kind: matrix, homeserver: \"{}\", access_token: \"{}\", room_id: \"{}\"}}\n    \
               members: [alice]\n\
             routes:\n  - rooms: [ops]\n    mention: [alice]\n",
            hs.homeserver_url(),
            bot.access_token,
            room
        ),
    )
    .await;
    // alice's handle on Matrix: rewrite the member block the harness wrote, then restart onto it.
    let path = app.config_path();
    let yaml = std::fs::read_to_string(&path).unwrap().replace(
        "alice: {role: admin, token: admin-token-0001}",
        &format!(
            "alice: {{role: admin, token: admin-token-0001, handles: {{matrix: \"{}\"}}}}",
            alice.user_id
        ),
    );
    std::fs::write(&path, yaml).unwrap();
    let app = app.restart().await;

    let fire = json!({"title": "Disk full on db1 @room", "status": "firing", "severity": "critical",
                      "labels": {"host": "db1"}, "description": "<b>92%</b> used"});
    assert_eq!(app.post("/ingest/hooks", &fire, &[]).await.status(), 202);
    app.process().await;
    assert_eq!(app.deliver().await, 1);

    let messages = hs.messages(&alice, &room).await;
    assert_eq!(messages.len(), 1, "{messages:#?}");
    let root = &messages[0];
    let root_id = root["event_id"].as_str().unwrap().to_string();
    assert_eq!(
        root["content"]["m.mentions"]["user_ids"],
        json!([alice.user_id])
    );
    assert_eq!(
        root["content"]["m.mentions"].get("room"),
        None,
        "alert text must not ping the room"
    );
    let html = root["content"]["formatted_body"].as_str().unwrap();
    assert!(
        html.contains("T-1") && html.contains("http://tocsin.test/tickets/T-1"),
        "{html}"
    );
    assert!(
        html.contains(&format!("https://matrix.to/#/{}", alice.user_id)),
        "{html}"
    );
    assert!(
        !html.contains("<b>92%</b>"),
        "alert HTML is escaped: {html}"
    );
    // The mention really reached alice.
    let notes = hs.notifications(&alice).await;
    assert!(
        notes
            .iter()
            .any(|n| n["event"]["event_id"] == root_id.as_str()),
        "{notes:#?}"
    );

    // An ack goes to the thread and edits the first message.
    assert_eq!(
        app.api_post("/api/tickets/T-1/ack", EDITOR, None)
            .await
            .status(),
        200
    );
    assert_eq!(app.deliver().await, 2);
    let thread = hs.thread(&alice, &room, &root_id).await;
    assert_eq!(thread.len(), 1, "{thread:#?}");
    assert!(
        thread[0]["content"]["body"]
            .as_str()
            .unwrap()
            .contains("ACKED"),
        "{thread:#?}"
    );

    // Resolving: another thread reply and another edit of the first message.
    let resolve =
        json!({"title": "Disk full on db1 @room", "status": "resolved", "labels": {"host": "db1"}});
    app.post("/ingest/hooks", &resolve, &[]).await;
    app.process().await;
    assert_eq!(app.deliver().await, 2);
    assert_eq!(hs.thread(&alice, &room, &root_id).await.len(), 2);
    let events = hs.messages(&alice, &room).await;
    let edits: Vec<_> = events
        .iter()
        .filter(|e| e["content"]["m.relates_to"]["rel_type"] == "m.replace")
        .collect();
    assert_eq!(edits.len(), 2);
    assert!(edits
        .iter()
        .all(|e| e["content"]["m.relates_to"]["event_id"] == root_id.as_str()));
    let last = edits.last().unwrap();
    assert!(
        last["content"]["m.new_content"]["body"]
            .as_str()
            .unwrap()
            .contains("RESOLVED"),
        "{last:#?}"
    );
    // One root, two thread replies, two edits: nothing posted twice.
    assert_eq!(events.len(), 5, "{events:#?}");
    let kinds = app.timeline_kinds("T-1").await;
    assert_eq!(
        kinds.iter().filter(|k| *k == "delivered").count(),
        5,
        "{kinds:?}"
    );

    // A restart with nothing pending posts nothing.
    let app = app.restart().await;
    assert_eq!(app.deliver().await, 0);
    assert_eq!(hs.messages(&alice, &room).await.len(), 5);
}

#[tokio::test]
async fn presence_is_read_from_a_real_matrix_homeserver() {
    let hs = Synapse::start().await;
    let bot = hs.register("tocsin", "bot-password-1", false).await;
    let bob = hs.register("bob", "bob-password-1", false).await;
    let room = hs.create_room(&bot, &[&bob]).await;
    hs.join(&bob, &room).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tocsin.db");
    let yaml = config_yaml(
        &db,
        &format!(
            "rooms:\n  ops:\n    sink: {{kind: matrix, homeserver: \"{}\", access_token: \"{}\", room_id: \"{}\"}}\n    members: [bob]\n",
            hs.homeserver_url(),
            bot.access_token,
            room
        ),
    )
    .replace(
        "bob: {role: editor, token: editor-token-0001}",
        &format!("bob: {{role: editor, token: editor-token-0001, handles: {{matrix: \"{}\"}}}}", bob.user_id),
    );
    std::fs::write(dir.path().join("tocsin.yaml"), &yaml).unwrap();
    let app = spawn_app_with_yaml(dir, yaml).await;
    let bob_presence = |v: serde_json::Value| {
        v["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == "bob")
            .unwrap()["presence"]
            .clone()
    };

    hs.set_presence(&bob, "online").await;
    assert_eq!(app.app.presence.step().await.unwrap(), 1);
    let p = bob_presence(
        app.api_get("/api/members", VIEWER)
            .await
            .json()
            .await
            .unwrap(),
    );
    assert_eq!(
        (p["state"].as_str(), p["source"].as_str()),
        (Some("online"), Some("matrix"))
    );
    // Polling again with nothing changed records nothing.
    assert_eq!(app.app.presence.step().await.unwrap(), 0);

    hs.set_presence(&bob, "unavailable").await;
    assert_eq!(app.app.presence.step().await.unwrap(), 1);
    let p = bob_presence(
        app.api_get("/api/members", VIEWER)
            .await
            .json()
            .await
            .unwrap(),
    );
    assert_eq!(p["state"], "away");
}

#[tokio::test]
async fn presence_on_a_real_matrix_homeserver_decides_who_is_emailed() {
    let smtp = common::smtp::SmtpServer::start();
    let hs = Synapse::start().await;
    let bot = hs.register("tocsin", "bot-password-1", false).await;
    let alice = hs.register("alice", "alice-password-1", false).await;
    let bob = hs.register("bob", "bob-password-1", false).await;
    let room = hs.create_room(&bot, &[&alice, &bob]).await;
    hs.join(&alice, &room).await;
    hs.join(&bob, &room).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tocsin.db");
    let yaml = config_yaml(
        &db,
        &format!(
            "rooms:\n  ops:\n    sink: {{kind: matrix, homeserver: \"{}\", access_token: \"{}\", room_id: \"{}\"}}\n    members: [alice, bob]\n\
             routes:\n  - {{rooms: [ops], mention: [alice, bob]}}\n\
             email: {{smtp: \"smtp://127.0.0.1:{}\", from: alerts@tocsin.test, secret: a-test-secret-of-32-characters!!, delay: 1m, mode: immediate}}\n",
            hs.homeserver_url(),
            bot.access_token,
            room,
            smtp.port,
        ),
    )
    .replace(
        "alice: {role: admin, token: admin-token-0001}",
        &format!("alice: {{role: admin, token: admin-token-0001, email: alice@example.test, handles: {{matrix: \"{}\"}}}}", alice.user_id),
    )
    .replace(
        "bob: {role: editor, token: editor-token-0001}",
        &format!("bob: {{role: editor, token: editor-token-0001, email: bob@example.test, handles: {{matrix: \"{}\"}}}}", bob.user_id),
    );
    std::fs::write(dir.path().join("tocsin.yaml"), &yaml).unwrap();
    let app = spawn_app_with_yaml(dir, yaml).await;

    hs.set_presence(&alice, "offline").await;
    hs.set_presence(&bob, "online").await;
    assert!(app.app.presence.step().await.unwrap() >= 1);

    let fire = json!({"title": "Disk full on db1", "status": "firing", "severity": "critical", "labels": {"host": "db1"}});
    assert_eq!(app.hook(fire).await.status(), 202);
    app.process().await;
    let scheduled: Vec<String> = app
        .timeline("T-1")
        .await
        .into_iter()
        .filter(|e| e["kind"] == "email_scheduled")
        .map(|e| e["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(scheduled.len(), 1, "{scheduled:?}");
    assert!(scheduled[0].starts_with("Email to alice"), "{scheduled:?}");

    app.advance(std::time::Duration::from_secs(60));
    assert_eq!(app.app.mailer.as_ref().unwrap().step().await.unwrap(), 1);
    let got = smtp.messages();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].to, ["alice@example.test"]);

    // bob goes idle on Matrix: the next ticket emails him too.
    hs.set_presence(&bob, "unavailable").await;
    assert_eq!(app.app.presence.step().await.unwrap(), 1);
    let fire = json!({"title": "Disk full on db2", "status": "firing", "severity": "critical", "labels": {"host": "db2"}});
    assert_eq!(app.hook(fire).await.status(), 202);
    app.process().await;
    app.advance(std::time::Duration::from_secs(60));
    app.app.mailer.as_ref().unwrap().step().await.unwrap();
    let mut to: Vec<String> = smtp.messages().iter().flat_map(|m| m.to.clone()).collect();
    to.sort();
    assert_eq!(
        to,
        [
            "alice@example.test",
            "alice@example.test",
            "bob@example.test"
        ]
    );
}

/// The bot's steps until `done` holds, at most `limit` of them. Each step long-polls `/sync` for up to a
/// second, so a step with nothing new returns on its own; no test sleeps.
async fn step_until<F, Fut>(bot: &tocsin::chatops::matrix::MatrixBot, limit: usize, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..limit {
        bot.step().await.expect("a /sync round");
        if done().await {
            return;
        }
    }
    panic!("not done after {limit} bot steps");
}

fn bodies(events: &[serde_json::Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            e["content"]["body"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn chatops_on_a_real_matrix_homeserver_acks_and_turns_thread_replies_into_notes() {
    let hs = Synapse::start().await;
    let bot_user = hs.register("tocsin", "bot-password-1", false).await;
    let alice = hs.register("alice", "alice-password-1", false).await;
    let mallory = hs.register("mallory", "mallory-password-1", false).await;
    let room = hs.create_room(&bot_user, &[&alice, &mallory]).await;
    hs.join(&alice, &room).await;
    hs.join(&mallory, &room).await;

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tocsin.db");
    let yaml = config_yaml(
        &db,
        &format!(
            "rooms:\n  ops:\n    sink: {{kind: matrix, homeserver: \"{}\", access_token: \"{}\", room_id: \"{}\"}}\n\
             routes:\n  - rooms: [ops]\n\
             chatops:\n  matrix: {{rooms: [ops]}}\n",
            hs.homeserver_url(),
            bot_user.access_token,
            room
        ),
    )
    // alice is an editor known by her Matrix user ID; `root` keeps the admin token the helpers use.
    .replace(
        "alice: {role: admin, token: admin-token-0001}",
        &format!(
            "alice: {{role: editor, token: alice-token-0001, handles: {{matrix: \"{}\"}}}}\n  \
             root: {{role: admin, token: admin-token-0001}}",
            alice.user_id
        ),
    );
    std::fs::write(dir.path().join("tocsin.yaml"), &yaml).unwrap();
    let app = spawn_app_with_yaml(dir, yaml).await;
    assert_eq!(app.app.matrix_bots.len(), 1);
    let bot = std::sync::Arc::clone(&app.app.matrix_bots[0]);
    bot.set_sync_timeout(std::time::Duration::from_millis(1000));
    // The first round only takes the position: history is not run again.
    hs.say(&alice, &room, "ack T-99").await;
    assert_eq!(bot.step().await.unwrap(), 0);

    let fire = json!({"title": "Disk full on db1", "status": "firing", "severity": "critical",
                      "labels": {"host": "db1"}});
    assert_eq!(app.hook(fire).await.status(), 202);
    app.process().await;
    assert_eq!(app.deliver().await, 1);
    let messages = hs.messages(&alice, &room).await;
    let root = messages
        .iter()
        .find(|m| m["sender"] == bot_user.user_id.as_str())
        .expect("the ticket's root message");
    let root_id = root["event_id"].as_str().unwrap().to_string();

    // Chatter is left alone; `ack T-1` typed in the room acks the ticket as alice, via matrix.
    hs.say(&alice, &room, "good morning, looking at db1 now")
        .await;
    let asked = hs.say(&mallory, &room, "status").await;
    hs.say(&alice, &room, "ack T-1").await;
    step_until(&bot, 5, || async {
        app.tickets().await[0]["state"] == "acked"
    })
    .await;
    let acked = app
        .timeline("T-1")
        .await
        .into_iter()
        .find(|e| e["kind"] == "acked")
        .unwrap();
    assert_eq!(acked["actor"], "member:alice");
    assert_eq!(acked["data"]["via"], "matrix");
    assert_eq!(acked["data"]["room"], "ops");
    // The bot answered in the ticket's thread, and tocsin's own ack message goes there too.
    let thread = bodies(&hs.thread(&alice, &room, &root_id).await);
    assert_eq!(
        thread,
        vec!["T-1 acknowledged by alice.".to_string()],
        "{thread:#?}"
    );
    assert!(app.deliver().await >= 1);
    let thread = bodies(&hs.thread(&alice, &room, &root_id).await);
    assert_eq!(thread.len(), 2, "{thread:#?}");
    assert!(thread[1].contains("ACKED"), "{thread:#?}");
    // Nothing answered the chatter, nor the history from before the bot started.
    let main: Vec<String> = hs
        .messages(&alice, &room)
        .await
        .into_iter()
        .filter(|m| m["sender"] == bot_user.user_id.as_str())
        .filter(|m| m["content"].get("m.relates_to").is_none())
        .map(|m| {
            m["content"]["body"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(main.len(), 1, "only the root message: {main:#?}");
    // Someone tocsin does not know is refused, in a reply to what they typed.
    let replies: Vec<serde_json::Value> = hs
        .messages(&alice, &room)
        .await
        .into_iter()
        .filter(|m| m["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == asked.as_str())
        .collect();
    assert_eq!(replies.len(), 1, "{replies:#?}");
    assert_eq!(replies[0]["sender"], bot_user.user_id.as_str());
    assert_eq!(replies[0]["content"]["msgtype"], "m.notice");
    assert!(
        replies[0]["content"]["body"]
            .as_str()
            .unwrap()
            .contains("do not know who you are"),
        "{replies:#?}"
    );

    // alice's reply in the thread becomes a public note by her, via matrix.
    let note = "disk replaced, watching it";
    hs.say_in_thread(&alice, &room, &root_id, note).await;
    step_until(&bot, 5, || async {
        app.timeline_kinds("T-1").await.iter().any(|k| k == "note")
    })
    .await;
    let entry = app
        .timeline("T-1")
        .await
        .into_iter()
        .find(|e| e["kind"] == "note")
        .unwrap();
    assert_eq!(entry["text"], note);
    assert_eq!(entry["visibility"], "public");
    assert_eq!(entry["actor"], "member:alice");
    assert_eq!(entry["data"]["via"], "matrix");
    // ... and is not posted back into the thread it came from: nothing is left to deliver, and the
    // note's text is in the thread once, as alice's own message.
    assert_eq!(app.deliver().await, 0);
    let thread = hs.thread(&alice, &room, &root_id).await;
    let copies: Vec<&serde_json::Value> = thread
        .iter()
        .filter(|e| {
            e["content"]["body"]
                .as_str()
                .is_some_and(|b| b.contains(note))
        })
        .collect();
    assert_eq!(copies.len(), 1, "{thread:#?}");
    assert_eq!(copies[0]["sender"], alice.user_id.as_str());

    // `resolve` alone in the thread acts on the thread's ticket.
    hs.say_in_thread(&alice, &room, &root_id, "resolve").await;
    step_until(&bot, 5, || async {
        app.tickets().await[0]["state"] == "resolved"
    })
    .await;

    // Someone tocsin does not know gets a polite refusal in the thread, and no note.
    hs.say_in_thread(&mallory, &room, &root_id, "I think it is the controller")
        .await;
    step_until(&bot, 5, || async {
        bodies(&hs.thread(&alice, &room, &root_id).await)
            .iter()
            .any(|b| b.contains("do not know who you are"))
    })
    .await;
    let notes: Vec<serde_json::Value> = app
        .timeline("T-1")
        .await
        .into_iter()
        .filter(|e| e["kind"] == "note")
        .collect();
    assert_eq!(notes.len(), 1, "{notes:#?}");
    assert!(!notes[0]["text"].as_str().unwrap().contains("controller"));

    // The server's loop leaves a long poll as soon as it is told to stop.
    bot.set_sync_timeout(std::time::Duration::from_secs(600));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(
        std::sync::Arc::clone(&bot).run(std::sync::Arc::clone(&app.app.cluster), stopped),
    );
    // Lets the loop start its /sync (the test runtime has one thread).
    tokio::task::yield_now().await;
    stop.send(true).unwrap();
    running.await.unwrap();
}
