//! The web UI in a real headless Chromium (over the DevTools Protocol): signing in, live timelines,
//! the composer going through the JSON API, escaping of hostile alert text, roles and CSRF, cookie
//! attributes, presence, and screenshots in target/screenshots for people to look at.

#[path = "common/browser.rs"]
mod browser;
mod common;

use std::path::PathBuf;

use browser::Browser;
use common::signin::{login_form, no_redirects, set_cookies};
use common::*;
use serde_json::{json, Value};

/// A room every ticket is routed to (its deliveries are written but never sent: no worker runs).
const ROOMS: &str =
    "rooms:\n  ops:\n    sink: {kind: webhook, url: \"http://127.0.0.1:9/hook\"}\n    \
                     members: [alice, bob]\nroutes:\n  - rooms: [ops]\n";

const HOSTILE: &str = r#"<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">"#;

async fn app() -> TestApp {
    spawn_app_with(ROOMS).await
}

/// Opens a ticket through the generic source and processes it.
async fn open_ticket(app: &TestApp, title: &str, severity: &str, host: &str) {
    expect(
        app.hook(
            json!({"title": title, "status": "firing", "severity": severity,
                        "labels": {"host": host, "team": "infra"},
                        "description": format!("{title}: seen by the probe")}),
        )
        .await,
        202,
    )
    .await;
    app.process().await;
}

/// Signs in through the form and lands on `next`.
async fn sign_in(b: &mut Browser, app: &TestApp, token: &str, next: &str) {
    b.goto(&format!("{}/login?next={next}", app.base)).await;
    b.type_into("#token", token).await;
    b.navigate_with("document.querySelector('.login button[type=submit]').click()")
        .await;
    let path = b.eval("location.pathname + location.search").await;
    assert_eq!(path, json!(next), "{}", b.log());
}

/// JS: a fetch from the page with the session cookie; resolves to `[status, body]`.
fn fetch_js(method: &str, path: &str, csrf: &str, body: Option<Value>) -> String {
    let mut headers = json!({"Content-Type": "application/json"});
    match csrf {
        "right" => {
            headers["X-CSRF-Token"] = json!("__CSRF__");
        }
        "none" => {}
        forged => headers["X-CSRF-Token"] = json!(forged),
    }
    let init = json!({"method": method, "headers": headers, "credentials": "same-origin"});
    let body = body.map_or("undefined".to_string(), |b| {
        json!(b.to_string()).to_string()
    });
    format!(
        "(async () => {{ const init = {init}; init.body = {body};
            if (init.headers['X-CSRF-Token'] === '__CSRF__') init.headers['X-CSRF-Token'] = document.body.dataset.csrf;
            const r = await fetch({path}, init);
            const t = await r.text();
            let j = null; try {{ j = JSON.parse(t); }} catch (e) {{}}
            return [r.status, j]; }})()",
        path = json!(path),
    )
}

fn notes_with_text(text: &str) -> String {
    format!(
        "[...document.querySelectorAll('#timeline .note .text')].filter((e) => e.textContent === {}).length",
        json!(text)
    )
}

#[tokio::test]
async fn notes_appear_live_and_the_composer_writes_through_the_api() {
    let app = app().await;
    open_ticket(&app, "Disk full on db1", "critical", "db1").await;
    let mut b = Browser::launch().await;
    sign_in(&mut b, &app, EDITOR, "/tickets/T-1").await;
    assert_eq!(
        b.eval("document.getElementById('title').textContent").await,
        json!("Disk full on db1")
    );
    assert_eq!(
        b.eval("document.getElementById('me').textContent").await,
        json!("bob")
    );

    // Someone else writes through the API with a bearer token: the open page shows it, no reload.
    let marker = b.eval("window.__sameDocument = 'yes'").await;
    assert_eq!(marker, json!("yes"));
    expect(
        app.api_post(
            "/api/tickets/T-1/notes",
            ADMIN,
            Some(json!({"text": "Looking at it from the API", "visibility": "public"})),
        )
        .await,
        201,
    )
    .await;
    b.wait_for(
        &format!("{} === 1", notes_with_text("Looking at it from the API")),
        "the API note on the open page",
    )
    .await;
    assert_eq!(
        b.eval("window.__sameDocument").await,
        json!("yes"),
        "the page reloaded"
    );
    // Someone else's note is on the left, with its author and a public badge.
    assert_eq!(
        b.eval("(() => { const li = document.querySelector('#timeline .note:not(.mine)'); return [li.querySelector('.author').textContent, li.querySelector('.badge').textContent]; })()")
            .await,
        json!(["alice", "public"])
    );

    // Then bob types an internal note into the composer and sends it.
    assert_eq!(
        b.eval("document.getElementById('note-visibility').value")
            .await,
        json!("internal"),
        "internal is the default"
    );
    b.type_into("#note-text", "Rebooting db1 now").await;
    b.click("#composer button[type=submit]").await;
    b.wait_for(
        &format!(
            "{} === 1 && document.getElementById('note-text').value === ''",
            notes_with_text("Rebooting db1 now")
        ),
        "bob's note in the timeline and the composer cleared",
    )
    .await;
    assert_eq!(
        b.eval("[...document.querySelectorAll('#timeline .note.mine .badge.internal')].length")
            .await,
        json!(1)
    );

    // It went through the JSON API as bob, via the web, internal.
    let timeline = app.timeline("T-1").await;
    let note = timeline
        .iter()
        .find(|e| e["text"] == "Rebooting db1 now")
        .unwrap_or_else(|| panic!("the note is not on the timeline: {timeline:#?}"));
    assert_eq!(note["visibility"], "internal");
    assert_eq!(note["actor"], "member:bob");
    assert_eq!(note["data"]["via"], "web");
    // The page shows each note once, though it came both as the answer and on the stream.
    b.wait_for(
        &format!(
            "document.querySelectorAll('#timeline [data-seqs]').length === {}",
            timeline.len()
        ),
        "every timeline entry exactly once",
    )
    .await;

    // Ack from the page: the button calls the API, the state chip follows.
    b.click("#ack").await;
    b.wait_for(
        "document.querySelector('#state .chip').textContent === 'acked' && document.getElementById('ack').disabled",
        "the ticket shown as acked",
    )
    .await;
    assert_eq!(app.tickets().await[0]["state"], "acked");
    assert_eq!(app.tickets().await[0]["acked_by"], "bob");

    // Mute: a silence on the ticket's labels, made through `POST /api/silences` as bob.
    b.click("#mute").await;
    b.wait_for(
        "document.getElementById('action-status').textContent === 'Muted for an hour.'",
        "the mute confirmed",
    )
    .await;
    let silences = expect(app.api_get("/api/silences", ADMIN).await, 200).await;
    let s = &silences["silences"][0];
    assert_eq!(s["author"], "bob", "{silences}");
    assert_eq!(
        s["matchers"].as_array().map(Vec::len),
        Some(2),
        "{silences}"
    );
    assert!(s["comment"].as_str().unwrap().contains("T-1"), "{silences}");
}

#[tokio::test]
async fn hostile_alert_text_shows_as_text_everywhere() {
    let app = app().await;
    open_ticket(&app, HOSTILE, "critical", HOSTILE).await;
    let mut b = Browser::launch().await;
    sign_in(&mut b, &app, EDITOR, "/").await;

    let safe = "typeof window.__pwned === 'undefined' && [...document.querySelectorAll('img')].filter((i) => i.getAttribute('src') === 'x').length === 0 && document.querySelectorAll('script:not([src])').length === 0";

    // The list.
    assert_eq!(
        b.eval("document.querySelector('td.title a').textContent")
            .await,
        json!(HOSTILE)
    );
    assert_eq!(b.eval(safe).await, json!(true));

    // The ticket page: title, label value, description.
    b.goto(&format!("{}/tickets/T-1", app.base)).await;
    assert_eq!(
        b.eval("document.getElementById('title').textContent").await,
        json!(HOSTILE)
    );
    assert_eq!(
        b.eval("[...document.querySelectorAll('.label .v')].map((e) => e.textContent)")
            .await,
        json!([HOSTILE, "infra"])
    );
    assert_eq!(
        b.eval("document.querySelector('.description').textContent")
            .await,
        json!(format!("{HOSTILE}: seen by the probe"))
    );
    assert_eq!(b.eval(safe).await, json!(true));

    // A hostile note arriving live goes through the script's rendering: still text.
    expect(
        app.api_post(
            "/api/tickets/T-1/notes",
            ADMIN,
            Some(json!({"text": HOSTILE, "visibility": "public"})),
        )
        .await,
        201,
    )
    .await;
    b.wait_for(
        &format!("{} === 1", notes_with_text(HOSTILE)),
        "the hostile note",
    )
    .await;
    assert_eq!(b.eval(safe).await, json!(true));

    // The room's activity, rendered by the server and live.
    b.goto(&format!("{}/rooms/ops", app.base)).await;
    assert_eq!(
        b.eval("document.querySelector('#feed .title').textContent")
            .await,
        json!(HOSTILE)
    );
    expect(
        app.api_post(
            "/api/tickets/T-1/notes",
            ADMIN,
            Some(json!({"text": format!("again {HOSTILE}"), "visibility": "public"})),
        )
        .await,
        201,
    )
    .await;
    b.wait_for(
        &format!(
            "document.querySelector('#feed .feed-item .text').textContent === {}",
            json!(format!("again {HOSTILE}"))
        ),
        "the live note at the top of the room feed",
    )
    .await;
    assert_eq!(b.eval(safe).await, json!(true));

    // Pages forbid inline scripts, so even a missed escape could not run one.
    let r = app
        .client
        .get(format!("{}/login", app.base))
        .send()
        .await
        .unwrap();
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
}

#[tokio::test]
async fn viewers_only_read_and_writes_need_the_csrf_token() {
    let app = app().await;
    open_ticket(&app, "Queue backlog growing", "warning", "mq1").await;
    expect(
        app.api_post(
            "/api/tickets/T-1/notes",
            ADMIN,
            Some(json!({"text": "secret internal detail", "visibility": "internal"})),
        )
        .await,
        201,
    )
    .await;
    let mut b = Browser::launch().await;

    // A viewer sees the ticket, no composer and no buttons, and not the internal note.
    sign_in(&mut b, &app, VIEWER, "/tickets/T-1").await;
    assert_eq!(
        b.eval("['#composer', '#actions', '#ack', '#resolve', '#assign', '#mute'].filter((s) => document.querySelector(s)).length")
            .await,
        json!(0)
    );
    assert_eq!(
        b.eval(&notes_with_text("secret internal detail")).await,
        json!(0)
    );
    assert_eq!(
        b.eval("document.querySelector('#state .chip').textContent")
            .await,
        json!("open")
    );
    // Reading through the API with the cookie works; writing is refused even with the right token.
    let read = b
        .eval(&fetch_js("GET", "/api/tickets/T-1", "none", None))
        .await;
    assert_eq!(read[0], 200, "{read}");
    for (path, body) in [
        (
            "/api/tickets/T-1/notes",
            Some(json!({"text": "viewer note"})),
        ),
        ("/api/tickets/T-1/ack", None),
        ("/api/tickets/T-1/resolve", None),
    ] {
        let r = b.eval(&fetch_js("POST", path, "right", body)).await;
        assert_eq!(r[0], 403, "{path}: {r}");
        assert_eq!(r[1]["error"], "forbidden", "{path}: {r}");
        assert!(r[1]["detail"].as_str().unwrap().contains("viewer"), "{r}");
    }

    // Signing out ends the session: the API no longer takes the cookie.
    b.navigate_with("document.querySelector('form[action=\"/logout\"] button').click()")
        .await;
    assert_eq!(b.eval("location.pathname").await, json!("/login"));
    let r = b.eval(&fetch_js("GET", "/api/tickets", "none", None)).await;
    assert_eq!(r[0], 401, "{r}");

    // An editor: a forged or missing CSRF token is refused, the right one works.
    sign_in(&mut b, &app, EDITOR, "/tickets/T-1").await;
    let note = || Some(json!({"text": "from the page", "visibility": "internal"}));
    let forged = b
        .eval(&fetch_js(
            "POST",
            "/api/tickets/T-1/notes",
            "AAAAforgedAAAA",
            note(),
        ))
        .await;
    assert_eq!(forged[0], 403, "{forged}");
    assert!(
        forged[1]["detail"].as_str().unwrap().contains("csrf"),
        "{forged}"
    );
    let missing = b
        .eval(&fetch_js("POST", "/api/tickets/T-1/notes", "none", note()))
        .await;
    assert_eq!(missing[0], 403, "{missing}");
    assert!(
        missing[1]["detail"].as_str().unwrap().contains("csrf"),
        "{missing}"
    );
    let ack = b
        .eval(&fetch_js("POST", "/api/tickets/T-1/ack", "none", None))
        .await;
    assert_eq!(ack[0], 403, "{ack}");
    assert_eq!(app.tickets().await[0]["state"], "open");
    assert!(!app
        .timeline("T-1")
        .await
        .iter()
        .any(|e| e["text"] == "from the page"));

    let right = b
        .eval(&fetch_js("POST", "/api/tickets/T-1/notes", "right", note()))
        .await;
    assert_eq!(right[0], 201, "{right}");
    assert_eq!(right[1]["actor"], "member:bob");
    assert_eq!(right[1]["data"]["via"], "web");
    let ack = b
        .eval(&fetch_js("POST", "/api/tickets/T-1/ack", "right", None))
        .await;
    assert_eq!(ack[0], 200, "{ack}");
    // The editor sees the internal note the viewer did not.
    assert_eq!(
        b.eval(&notes_with_text("secret internal detail")).await,
        json!(1)
    );

    // The admin page is for admins only.
    b.goto(&format!("{}/admin", app.base)).await;
    assert_eq!(
        b.eval("document.querySelector('main h1').textContent")
            .await,
        json!("Admins only")
    );
}

async fn post_login(
    client: &reqwest::Client,
    base: &str,
    nonce: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    client
        .post(format!("{base}/login"))
        .header("cookie", nonce)
        .form(form)
        .send()
        .await
        .unwrap()
}

/// Signs in through the form with `token`; the session's whole `Set-Cookie` value.
async fn session_cookie(client: &reqwest::Client, base: &str, token: &str) -> String {
    let (nonce, csrf) = login_form(client, base).await;
    let r = post_login(client, base, &nonce, &[("token", token), ("csrf", &csrf)]).await;
    set_cookies(&r)
        .into_iter()
        .find(|c| c.contains("tocsin_session="))
        .expect("a session cookie")
}

#[tokio::test]
async fn sign_in_sets_a_strict_http_only_cookie_and_wrong_tokens_get_none() {
    let app = app().await;
    open_ticket(&app, "Cert expires soon", "info", "web1").await;
    let client = no_redirects();
    let (nonce, csrf) = login_form(&client, &app.base).await;

    // A wrong token: the form again with an error, and no session cookie.
    let r = post_login(
        &client,
        &app.base,
        &nonce,
        &[
            ("token", "not-a-member-token"),
            ("csrf", &csrf),
            ("next", "/"),
        ],
    )
    .await;
    assert_eq!(r.status(), 401);
    assert!(set_cookies(&r).is_empty(), "{:?}", set_cookies(&r));
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("That token does not belong to any member."));

    // A missing or foreign CSRF field: 403 with the app's JSON error.
    let r = post_login(
        &client,
        &app.base,
        &nonce,
        &[("token", EDITOR), ("next", "/")],
    )
    .await;
    let body = expect(r, 403).await;
    assert_eq!(body["error"], "forbidden");
    let (_, other_csrf) = login_form(&client, &app.base).await;
    let r = post_login(
        &client,
        &app.base,
        &nonce,
        &[("token", EDITOR), ("csrf", &other_csrf)],
    )
    .await;
    assert!(set_cookies(&r).is_empty());
    expect(r, 403).await;

    // The right token: a redirect to `next` and the session cookie, HttpOnly and SameSite=Strict.
    let r = post_login(
        &client,
        &app.base,
        &nonce,
        &[("token", EDITOR), ("csrf", &csrf), ("next", "/tickets/T-1")],
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/tickets/T-1");
    let cookie = set_cookies(&r)
        .into_iter()
        .find(|c| c.contains("tocsin_session="))
        .expect("a session cookie");
    let attrs: Vec<&str> = cookie.split(';').map(str::trim).collect();
    assert!(attrs.contains(&"HttpOnly"), "{cookie}");
    assert!(attrs.contains(&"SameSite=Strict"), "{cookie}");
    assert!(attrs.contains(&"Path=/"), "{cookie}");
    assert!(!attrs.contains(&"Secure"), "plain http: {cookie}");
    let session = attrs[0].to_string();

    // The cookie signs API reads in; writes also need the CSRF header.
    let r = client
        .get(format!("{}/api/tickets", app.base))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(expect(r, 200).await["tickets"][0]["key"], "T-1");
    let r = client
        .post(format!("{}/api/tickets/T-1/ack", app.base))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert!(expect(r, 403).await["detail"]
        .as_str()
        .unwrap()
        .contains("csrf"));

    // `next` may only be a path on this site.
    let r = post_login(
        &client,
        &app.base,
        &nonce,
        &[
            ("token", EDITOR),
            ("csrf", &csrf),
            ("next", "//evil.example/"),
        ],
    )
    .await;
    assert_eq!(r.headers()["location"], "/");

    // Pages send signed-out browsers to the form, and back afterwards.
    let r = client
        .get(format!("{}/tickets/T-1?x=1", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        "/login?next=%2Ftickets%2FT-1%3Fx%3D1"
    );

    // Admins get the admin page; others a 403 page.
    let admin = |session: String| {
        let client = client.clone();
        let url = format!("{}/admin", app.base);
        async move {
            let r = client
                .get(url)
                .header("cookie", session)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (status, _) = admin(session.clone()).await;
    assert_eq!(status, 403);
    let alice = session_cookie(&client, &app.base, ADMIN)
        .await
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let (status, html) = admin(alice).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("Dead deliveries") && html.contains("Dropped alerts"),
        "{html}"
    );

    // Behind https, the cookie is also Secure.
    let dir = tempfile::tempdir().unwrap();
    let yaml = config_yaml(&dir.path().join("tocsin.db"), "")
        .replace("public_url: http://", "public_url: https://");
    let secure = spawn_app_with_yaml(dir, yaml).await;
    let cookie = session_cookie(&client, &secure.base, EDITOR).await;
    assert!(cookie.split(';').any(|a| a.trim() == "Secure"), "{cookie}");
}

#[tokio::test]
async fn sessions_survive_restarts_with_a_secret_and_end_with_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = config_yaml(
        &dir.path().join("tocsin.db"),
        "web: {session_secret: web-session-secret-0001, session_ttl: 1h}\n",
    );
    let app = spawn_app_with_yaml(dir, yaml.clone()).await;
    let client = no_redirects();
    let cookie = session_cookie(&client, &app.base, EDITOR).await;
    assert!(cookie.contains("Max-Age=3600"), "{cookie}");
    let session = cookie.split(';').next().unwrap().to_string();
    let get = |base: String, session: String| {
        let client = client.clone();
        async move {
            client
                .get(format!("{base}/api/tickets"))
                .header("cookie", session)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(get(app.base.clone(), session.clone()).await, 200);
    // A tampered cookie is nobody's.
    let tampered = session.replacen("bob.", "alice.", 1);
    assert_eq!(get(app.base.clone(), tampered).await, 401);

    // The same secret after a restart: still signed in.
    let app = app.restart().await;
    assert_eq!(get(app.base.clone(), session.clone()).await, 200);

    // It expires with its lifetime.
    app.advance(std::time::Duration::from_secs(3601));
    assert_eq!(get(app.base.clone(), session.clone()).await, 401);

    // A session made now, then bob's token leaves the config: the session ends with it.
    let session = session_cookie(&client, &app.base, EDITOR)
        .await
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(get(app.base.clone(), session.clone()).await, 200);
    let without = yaml.replace(
        &format!("bob: {{role: editor, token: {EDITOR}}}"),
        "bob: {role: editor}",
    );
    assert_ne!(without, yaml);
    std::fs::write(app.config_path(), without).unwrap();
    let app = app.restart().await;
    assert_eq!(get(app.base.clone(), session).await, 401);
}

#[tokio::test]
async fn screenshots_of_the_list_and_a_ticket() {
    let app = app().await;
    open_ticket(
        &app,
        "Disk almost full on db1 (/var at 93%)",
        "critical",
        "db1",
    )
    .await;
    open_ticket(&app, "Replication lag above 30s", "error", "db2").await;
    open_ticket(
        &app,
        "Certificate for api.example.com expires in 9 days",
        "warning",
        "lb1",
    )
    .await;
    open_ticket(
        &app,
        "Nightly backup took longer than usual",
        "info",
        "backup1",
    )
    .await;
    for (token, text, vis) in [
        (
            ADMIN,
            "Looking. The WAL archive has not been pruned since Tuesday.",
            "public",
        ),
        (
            EDITOR,
            "I will take it; pruning the archive by hand and then checking the cron job.",
            "internal",
        ),
    ] {
        expect(
            app.api_post(
                "/api/tickets/T-1/notes",
                token,
                Some(json!({"text": text, "visibility": vis})),
            )
            .await,
            201,
        )
        .await;
    }
    expect(
        app.api_post(
            "/api/tickets/T-1/assign",
            EDITOR,
            Some(json!({"member": "bob"})),
        )
        .await,
        200,
    )
    .await;
    expect(app.api_post("/api/tickets/T-2/ack", ADMIN, None).await, 200).await;
    expect(
        app.api_post("/api/tickets/T-4/resolve", ADMIN, None).await,
        200,
    )
    .await;

    let mut b = Browser::launch().await;
    sign_in(&mut b, &app, EDITOR, "/").await;
    assert_eq!(
        b.eval("document.querySelectorAll('tr.ticket-row').length")
            .await,
        json!(4)
    );
    // The stylesheet applied (the CSP allows it): the top bar is dark.
    assert_ne!(
        b.eval("getComputedStyle(document.querySelector('header.top')).backgroundColor")
            .await,
        json!("rgba(0, 0, 0, 0)")
    );
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    b.screenshot(&dir.join("list.png")).await;

    b.goto(&format!("{}/tickets/T-1", app.base)).await;
    b.wait_for(
        "document.querySelectorAll('#timeline .note').length === 2",
        "both notes",
    )
    .await;
    b.type_into("#note-text", "Archive pruned; 41% used now.")
        .await;
    b.screenshot(&dir.join("ticket.png")).await;

    b.goto(&format!("{}/rooms/ops", app.base)).await;
    assert!(
        b.eval("document.querySelectorAll('#feed .feed-item').length")
            .await
            .as_u64()
            .unwrap()
            >= 4
    );
    b.screenshot(&dir.join("room.png")).await;
    for f in ["list.png", "ticket.png", "room.png"] {
        let png = std::fs::read(dir.join(f)).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{f} is not a PNG");
    }
}

#[tokio::test]
async fn an_open_page_reports_its_member_online_from_the_web() {
    let app = app().await;
    open_ticket(&app, "Disk full on db1", "critical", "db1").await;
    let mut b = Browser::launch().await;
    sign_in(&mut b, &app, EDITOR, "/tickets/T-1").await;
    b.wait_for(
        "fetch('/api/members').then((r) => r.json()).then((j) => { const p = j.members.find((m) => m.name === 'bob').presence; return p.state === 'online' && p.source === 'web'; })",
        "bob online from the web",
    )
    .await;
    let members = expect(app.api_get("/api/members", ADMIN).await, 200).await;
    let bob = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "bob")
        .unwrap();
    assert_eq!(bob["presence"]["state"], "online", "{bob}");
    assert_eq!(bob["presence"]["source"], "web", "{bob}");
    assert_eq!(bob["presence"]["since"], app.now().to_rfc3339());

    // Idle is away; the beacon's CSRF token may come in the body; a wrong one is refused.
    let idle = b
        .eval(&fetch_js(
            "POST",
            "/web/presence",
            "right",
            Some(json!({"state": "idle"})),
        ))
        .await;
    assert_eq!(idle[0], 204, "{idle}");
    let presence = |members: Value| {
        members["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == "bob")
            .unwrap()["reports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["source"] == "web")
            .unwrap()["state"]
            .clone()
    };
    assert_eq!(
        presence(expect(app.api_get("/api/members", ADMIN).await, 200).await),
        "away"
    );
    let beacon = b
        .eval("(async () => { const r = await fetch('/web/presence', {method: 'POST', body: JSON.stringify({state: 'offline', csrf: document.body.dataset.csrf})}); return r.status; })()")
        .await;
    assert_eq!(beacon, 204);
    assert_eq!(
        presence(expect(app.api_get("/api/members", ADMIN).await, 200).await),
        "offline"
    );
    let forged = b
        .eval("(async () => { const r = await fetch('/web/presence', {method: 'POST', body: JSON.stringify({state: 'active', csrf: 'forged'})}); return [r.status, await r.json()]; })()")
        .await;
    assert_eq!(forged[0], 403, "{forged}");
    assert_eq!(
        presence(expect(app.api_get("/api/members", ADMIN).await, 200).await),
        "offline"
    );
}

#[tokio::test]
async fn an_admin_retries_a_dead_delivery_from_the_admin_page() {
    // A room whose hook refuses for good: the opening dies at once and waits for an admin.
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(404).set_body_string("no such hook"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let app = spawn_app_with(&format!(
        "rooms:\n  ops:\n    sink: {{kind: webhook, url: \"{}/hook\"}}\nroutes:\n  - rooms: [ops]\n",
        server.uri()
    ))
    .await;
    open_ticket(&app, "Backup failed", "error", "db1").await;
    app.deliver().await;
    let dead = expect(app.api_get("/api/deliveries/dead", ADMIN).await, 200).await;
    assert_eq!(dead["deliveries"].as_array().unwrap().len(), 1);

    let mut b = Browser::launch().await;
    sign_in(&mut b, &app, ADMIN, "/admin").await;
    let text = b.eval("document.querySelector('main').textContent").await;
    assert!(
        text.as_str().unwrap().contains("HTTP 404: no such hook"),
        "{text}"
    );
    b.click("button.retry").await;
    b.wait_for(
        "document.querySelector('button.retry').textContent === 'Queued'",
        "the retry to be queued",
    )
    .await;

    // Back in line, and this time the hook takes it.
    let dead = expect(app.api_get("/api/deliveries/dead", ADMIN).await, 200).await;
    assert_eq!(dead["deliveries"], json!([]));
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(200))
        .mount(&server)
        .await;
    assert_eq!(app.deliver().await, 1);
    let kinds = app.timeline_kinds("T-1").await;
    assert_eq!(
        kinds.last().map(String::as_str),
        Some("delivered"),
        "{kinds:?}"
    );
    assert!(kinds.contains(&"delivery_dead".to_string()), "{kinds:?}");
    let retried = app
        .timeline("T-1")
        .await
        .into_iter()
        .any(|e| e["text"].as_str().unwrap_or_default().contains("alice"));
    assert!(retried, "the timeline names who retried it");
}

/// JS: the silences listed in a section of the silences page (`current` or `expired`), each as
/// `[id, matchers, comment, when, author]`, in page order.
fn silences_js(section: &str) -> String {
    format!(
        "[...document.querySelectorAll('#silences-{section} li.silence')].map((li) => [
            Number(li.dataset.silence),
            [...li.querySelectorAll('.matcher')].map((m) => m.textContent),
            li.querySelector('.comment').textContent,
            li.querySelector('.when').textContent,
            li.querySelector('.author b').textContent])"
    )
}

/// Picks a duration in the new-silence form, as a person would (the `change` event included).
fn choose_duration_js(value: &str) -> String {
    format!(
        "(() => {{ const s = document.getElementById('silence-duration'); s.value = {v};
            s.dispatchEvent(new Event('change')); return s.value; }})()",
        v = json!(value)
    )
}

async fn silences(app: &TestApp) -> Vec<Value> {
    let list = expect(app.api_get("/api/silences", ADMIN).await, 200).await;
    list["silences"].as_array().unwrap().clone()
}

#[tokio::test]
async fn an_editor_silences_similar_alerts_from_the_page_and_expires_the_silence() {
    let app = app().await;
    open_ticket(&app, "Disk full on db9", "critical", "db9").await;
    let mut b = Browser::launch().await;
    sign_in(&mut b, &app, EDITOR, "/tickets/T-1").await;

    // "Silence similar…" next to Mute opens the form with the ticket's labels as matchers.
    b.navigate_with("document.getElementById('silence-similar').click()")
        .await;
    assert_eq!(b.eval("location.pathname").await, json!("/silences"));
    assert_eq!(
        b.eval("document.querySelector('header.top .links a.active').textContent")
            .await,
        json!("Silences")
    );
    assert_eq!(
        b.eval("document.getElementById('silence-matchers').value")
            .await,
        json!("host=\"db9\"\nteam=\"infra\"")
    );
    assert_eq!(
        b.eval("document.querySelector('#silences-current .empty').textContent")
            .await,
        json!("No silences: every alert reaches its rooms.")
    );

    // Four hours, a reason, and send: the page comes back with the new silence at the top.
    assert_eq!(b.eval(&choose_duration_js("4h")).await, json!("4h"));
    b.type_into("#silence-comment", "Replacing the disk in db9")
        .await;
    b.navigate_with("document.querySelector('#silence-form button[type=submit]').click()")
        .await;
    assert_eq!(
        b.eval("location.pathname + location.search").await,
        json!("/silences?created=1")
    );
    assert_eq!(
        b.eval(&silences_js("current")).await,
        json!([[
            1,
            ["host=db9", "team=infra"],
            "Replacing the disk in db9",
            "4h left",
            "bob"
        ]])
    );
    assert_eq!(
        b.eval("document.getElementById('silence-1').classList.contains('new')")
            .await,
        json!(true)
    );

    // It went through the API as bob.
    let list = silences(&app).await;
    assert_eq!(list.len(), 1, "{list:#?}");
    let s = &list[0];
    assert_eq!(s["author"], "bob");
    assert_eq!(s["comment"], "Replacing the disk in db9");
    assert_eq!(s["state"], "active");
    assert_eq!(
        s["matchers_text"],
        json!(["host=\"db9\"", "team=\"infra\""])
    );
    assert_eq!(
        s["ends_at"],
        app.now()
            .plus(std::time::Duration::from_secs(4 * 3600))
            .to_rfc3339()
    );

    // A matching alert afterwards still opens its ticket, silenced.
    open_ticket(&app, "Disk slow on db9", "warning", "db9").await;
    let kinds = app.timeline_kinds("T-2").await;
    assert!(kinds.contains(&"silenced".to_string()), "{kinds:?}");
    let silenced = app
        .timeline("T-2")
        .await
        .into_iter()
        .find(|e| e["kind"] == "silenced")
        .unwrap();
    assert!(
        silenced["text"]
            .as_str()
            .unwrap()
            .contains("\"Replacing the disk in db9\""),
        "{silenced}"
    );
    assert!(!app
        .timeline_kinds("T-1")
        .await
        .contains(&"silenced".to_string()));

    // The time left follows the clock.
    app.advance(std::time::Duration::from_secs(30 * 60));
    b.goto(&format!("{}/silences", app.base)).await;
    assert_eq!(
        b.eval("document.querySelector('#silence-1 .when').textContent")
            .await,
        json!("3h 30m left")
    );

    // Expire: the silence moves to the expired list, naming bob.
    b.navigate_with("document.querySelector('#silence-1 button.expire').click()")
        .await;
    assert_eq!(b.eval(&silences_js("current")).await, json!([]));
    assert_eq!(
        b.eval(&silences_js("expired")).await,
        json!([[
            1,
            ["host=db9", "team=infra"],
            "Replacing the disk in db9",
            "expired early by bob",
            "bob"
        ]])
    );
    assert_eq!(
        b.eval("document.querySelectorAll('button.expire').length")
            .await,
        json!(0)
    );
    let list = silences(&app).await;
    assert_eq!(list[0]["state"], "expired", "{list:#?}");
    assert_eq!(list[0]["expired_by"], "bob", "{list:#?}");
    assert_eq!(list[0]["ends_at"], app.now().to_rfc3339(), "{list:#?}");
}

#[tokio::test]
async fn a_bad_silence_shows_the_api_error_on_the_page_and_makes_nothing() {
    let app = app().await;
    let mut b = Browser::launch().await;
    sign_in(&mut b, &app, EDITOR, "/silences").await;
    assert_eq!(
        b.eval("document.getElementById('silence-error').hidden")
            .await,
        json!(true)
    );
    b.type_into("#silence-matchers", "host=~\"(\"").await;
    b.type_into("#silence-comment", "db maintenance").await;
    b.eval("window.__samePage = 'yes'").await;
    b.click("#silence-form button[type=submit]").await;
    b.wait_for(
        "!document.getElementById('silence-error').hidden && !document.querySelector('#silence-form button[type=submit]').disabled",
        "the form's error",
    )
    .await;

    // Word for word what the API says about it.
    let api = expect(
        app.api_post(
            "/api/silences",
            EDITOR,
            Some(
                json!({"matchers": ["host=~\"(\""], "duration": "2h", "comment": "db maintenance"}),
            ),
        )
        .await,
        400,
    )
    .await;
    assert_eq!(api["error"], "invalid_matcher", "{api}");
    let shown = b
        .eval("document.getElementById('silence-error').textContent")
        .await;
    assert_eq!(shown, api["detail"], "{api}");
    assert!(
        shown.as_str().unwrap().contains("is not a valid regex"),
        "{shown}"
    );
    assert_eq!(b.eval("window.__samePage").await, json!("yes"));
    assert_eq!(silences(&app).await, Vec::<Value>::new());
    assert_eq!(
        b.eval("document.querySelectorAll('li.silence').length")
            .await,
        json!(0)
    );

    // Fixed, space separated, with a duration typed in: made, and the error gone with the old page.
    b.eval("document.getElementById('silence-matchers').value = ''")
        .await;
    b.type_into("#silence-matchers", "host=~\"db[0-9]+\" team = infra")
        .await;
    assert_eq!(
        b.eval("document.getElementById('silence-custom').hidden")
            .await,
        json!(true)
    );
    b.eval(&choose_duration_js("custom")).await;
    assert_eq!(
        b.eval("document.getElementById('silence-custom').hidden")
            .await,
        json!(false)
    );
    b.type_into("#silence-custom", "1h30m").await;
    b.navigate_with("document.querySelector('#silence-form button[type=submit]').click()")
        .await;
    let list = silences(&app).await;
    assert_eq!(list.len(), 1, "{list:#?}");
    assert_eq!(
        list[0]["matchers_text"],
        json!(["host=~\"db[0-9]+\"", "team=\"infra\""])
    );
    assert_eq!(
        list[0]["ends_at"],
        app.now()
            .plus(std::time::Duration::from_secs(90 * 60))
            .to_rfc3339()
    );
    assert_eq!(
        b.eval(&silences_js("current")).await,
        json!([[
            1,
            ["host=~db[0-9]+", "team=infra"],
            "db maintenance",
            "1h 30m left",
            "bob"
        ]])
    );
    assert_eq!(
        b.eval("document.getElementById('silence-error').hidden")
            .await,
        json!(true)
    );
}

#[tokio::test]
async fn viewers_see_silences_but_cannot_make_or_expire_them() {
    let app = app().await;
    open_ticket(&app, "Disk full on db9", "critical", "db9").await;
    for (matchers, comment) in [
        (json!(["host=db9"]), "Disk swap"),
        (
            json!(["team=infra", "severity!=critical"]),
            "Noisy during the migration",
        ),
    ] {
        expect(
            app.api_post(
                "/api/silences",
                EDITOR,
                Some(json!({"matchers": matchers, "duration": "1h", "comment": comment})),
            )
            .await,
            201,
        )
        .await;
    }
    let mut b = Browser::launch().await;
    sign_in(&mut b, &app, VIEWER, "/silences").await;
    assert_eq!(
        b.eval(&silences_js("current")).await,
        json!([
            [1, ["host=db9"], "Disk swap", "1h left", "bob"],
            [
                2,
                ["team=infra", "severity!=critical"],
                "Noisy during the migration",
                "1h left",
                "bob"
            ]
        ])
    );
    assert_eq!(
        b.eval("['#silence-form', 'button.expire', '.new-silence'].filter((s) => document.querySelector(s)).length")
            .await,
        json!(0)
    );
    assert!(b
        .eval("document.querySelector('main').textContent")
        .await
        .as_str()
        .unwrap()
        .contains("editors and admins make and expire them"));
    // A pre-filled link gives a viewer the list, still without a form.
    b.goto(&format!("{}/silences?matchers=host%3Ddb9", app.base))
        .await;
    assert_eq!(
        b.eval("document.querySelectorAll('#silence-form, textarea').length")
            .await,
        json!(0)
    );
    // Nor does the ticket page offer "Silence similar…".
    b.goto(&format!("{}/tickets/T-1", app.base)).await;
    assert_eq!(
        b.eval("document.getElementById('silence-similar')").await,
        Value::Null
    );
}

#[tokio::test]
async fn hostile_silence_text_shows_as_text() {
    let app = app().await;
    let comment = r#"<img src=x onerror="window.__pwned=1">"#;
    let value = r#"</span><script>window.__pwned=2</script>"#;
    let made = expect(
        app.api_post(
            "/api/silences",
            EDITOR,
            Some(json!({"matchers": [format!("host={}", json!(value))], "duration": "2h", "comment": comment})),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(made["silence"]["comment"], comment);
    let mut b = Browser::launch().await;
    sign_in(&mut b, &app, EDITOR, "/silences").await;
    let safe = "typeof window.__pwned === 'undefined' && [...document.querySelectorAll('img')].filter((i) => i.getAttribute('src') === 'x').length === 0 && document.querySelectorAll('script:not([src])').length === 0";
    assert_eq!(
        b.eval(&silences_js("current")).await,
        json!([[1, [format!("host={value}")], comment, "2h left", "bob"]])
    );
    assert_eq!(b.eval(safe).await, json!(true));

    // Pre-filling the form with hostile text fills the textarea, nothing else.
    b.goto(&format!(
        "{}/silences?matchers={}",
        app.base, "%3C%2Ftextarea%3E%3Cimg%20src%3Dx%20onerror%3D%22window.__pwned%3D3%22%3E"
    ))
    .await;
    assert_eq!(
        b.eval("document.getElementById('silence-matchers').value")
            .await,
        json!(r#"</textarea><img src=x onerror="window.__pwned=3">"#)
    );
    assert_eq!(b.eval(safe).await, json!(true));

    // Expired, it is still text.
    b.navigate_with("document.querySelector('#silence-1 button.expire').click()")
        .await;
    assert_eq!(
        b.eval(&silences_js("expired")).await,
        json!([[
            1,
            [format!("host={value}")],
            comment,
            "expired early by bob",
            "bob"
        ]])
    );
    assert_eq!(b.eval(safe).await, json!(true));
}

#[tokio::test]
async fn screenshot_of_the_silences_page() {
    let app = app().await;
    let make = |body: Value| {
        let app = &app;
        async move { expect(app.api_post("/api/silences", EDITOR, Some(body)).await, 201).await }
    };
    // One that ran its course, and one ended early.
    make(
        json!({"matchers": ["alertname=NightlyBackupSlow"], "duration": "30m",
                "comment": "Backup window moved to 02:00"}),
    )
    .await;
    make(
        json!({"matchers": ["host=lb1", "severity=~\"warning|info\""], "duration": "1d",
                "comment": "Certificate renewal in progress"}),
    )
    .await;
    app.advance(std::time::Duration::from_secs(3600));
    expect(
        app.api_post("/api/silences/2/expire", ADMIN, None).await,
        200,
    )
    .await;
    // In force, and one that starts later.
    make(json!({"matchers": ["host=~\"db[0-9]+\"", "team=infra"], "duration": "4h",
                "comment": "Replacing the disks on the database hosts, one at a time. Ping bob before acking anything from these."}))
    .await;
    make(
        json!({"matchers": ["alertname=ReplicationLag", "env!=staging"], "duration": "45m",
                "comment": "Re-seeding db2"}),
    )
    .await;
    let later = app.now().plus(std::time::Duration::from_secs(20 * 3600));
    make(json!({"matchers": ["room=ops", "source=hooks"],
                "starts_at": later.to_rfc3339(),
                "ends_at": later.plus(std::time::Duration::from_secs(2 * 3600)).to_rfc3339(),
                "comment": "Planned network maintenance (CHG-1182)"}))
    .await;

    let mut b = Browser::launch().await;
    sign_in(&mut b, &app, EDITOR, "/silences").await;
    b.goto(&format!("{}/silences?matchers=host%3D%22web1%22", app.base))
        .await;
    assert_eq!(
        b.eval("document.querySelectorAll('#silences-current li.silence').length")
            .await,
        json!(3)
    );
    // Ending soonest first, then the one to come.
    assert_eq!(
        b.eval("[...document.querySelectorAll('#silences-current li.silence')].map((li) => [Number(li.dataset.silence), li.querySelector('.silence-state').textContent, li.querySelector('.when').textContent])")
            .await,
        json!([[4, "active", "45m left"], [3, "active", "4h left"], [5, "pending", "starts in 20h"]])
    );
    assert_eq!(
        b.eval("[...document.querySelectorAll('#silences-expired li.silence')].map((li) => [Number(li.dataset.silence), li.querySelector('.when').textContent])")
            .await,
        json!([[2, "expired early by alice"], [1, "ran its course"]])
    );
    // The stylesheet applied: the form is a grid.
    assert_eq!(
        b.eval("getComputedStyle(document.getElementById('silence-form')).display")
            .await,
        json!("grid")
    );
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    b.screenshot(&dir.join("silences.png")).await;
    let png = std::fs::read(dir.join("silences.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG"));
}
