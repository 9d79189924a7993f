//! Browser sessions and credentials on the server side, over plain HTTP: signing out ends a session
//! everywhere (a copied cookie too, across restarts), a reload makes removed members and old tokens
//! fail at once, guessers of tokens are throttled, and the unsubscribe page is protected like the UI.

mod common;

use std::time::Duration;

use common::signin::{self, *};
use common::*;

#[tokio::test]
async fn signing_out_ends_the_session_and_a_copied_cookie_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = config_yaml(
        &dir.path().join("tocsin.db"),
        "web: {session_secret: web-session-secret-0001}\n",
    );
    let app = spawn_app_with_yaml(dir, yaml).await;
    let client = no_redirects();
    let session = session(&client, &app.base, EDITOR).await;
    // Someone copied the cookie (another browser, a stolen laptop's profile).
    let copied = session.clone();
    assert_eq!(api_status(&client, &app.base, &copied).await, 200);

    sign_out(&client, &app.base, &session).await;
    assert_eq!(api_status(&client, &app.base, &session).await, 401);
    assert_eq!(api_status(&client, &app.base, &copied).await, 401);
    // Pages send it to the sign-in form.
    let r = client
        .get(format!("{}/", app.base))
        .header("cookie", &copied)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);

    // Still ended after a restart (the secret is the same, so only the server can tell).
    let app = app.restart().await;
    assert_eq!(api_status(&client, &app.base, &copied).await, 401);
    // Signing in again works, and only the new session does.
    let fresh = signin::session(&client, &app.base, EDITOR).await;
    assert_eq!(api_status(&client, &app.base, &fresh).await, 200);
    assert_eq!(api_status(&client, &app.base, &copied).await, 401);
}

#[tokio::test]
async fn a_reload_makes_removed_members_and_old_tokens_fail_at_once() {
    let app = spawn_app().await;
    let client = no_redirects();
    let carol = session(&client, &app.base, VIEWER).await;
    let bob = session(&client, &app.base, EDITOR).await;
    assert_eq!(app.api_get("/api/tickets", EDITOR).await.status(), 200);
    assert_eq!(app.api_get("/api/tickets", VIEWER).await.status(), 200);

    // Bob's token changes and carol leaves.
    let yaml = std::fs::read_to_string(app.config_path()).unwrap();
    let changed = yaml
        .replace(
            &format!("bob: {{role: editor, token: {EDITOR}}}"),
            "bob: {role: editor, token: editor-token-0002}",
        )
        .replace(&format!("carol: {{role: viewer, token: {VIEWER}}}"), "");
    assert!(
        !changed.contains(EDITOR) && !changed.contains(VIEWER),
        "{changed}"
    );
    std::fs::write(app.config_path(), changed).unwrap();
    let v = expect(app.api_post("/-/reload", ADMIN, None).await, 200).await;
    assert!(
        v["members"]
            .as_str()
            .unwrap()
            .contains("tokens and roles reloaded"),
        "{v}"
    );

    // No restart: the old token, carol's token and both sessions are refused now.
    assert_eq!(app.api_get("/api/tickets", EDITOR).await.status(), 401);
    assert_eq!(app.api_get("/api/tickets", VIEWER).await.status(), 401);
    assert_eq!(api_status(&client, &app.base, &bob).await, 401);
    assert_eq!(api_status(&client, &app.base, &carol).await, 401);
    // The new token works, for the API and for signing in.
    assert_eq!(
        app.api_get("/api/tickets", "editor-token-0002")
            .await
            .status(),
        200
    );
    let bob = session(&client, &app.base, "editor-token-0002").await;
    assert_eq!(api_status(&client, &app.base, &bob).await, 200);
    // Carol is not in the member list any more either.
    let v = expect(app.api_get("/api/members", ADMIN).await, 200).await;
    assert!(
        v["members"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["name"] != "carol"),
        "{v}"
    );
}

#[tokio::test]
async fn token_guessers_are_throttled_per_address_with_429_and_retry_after() {
    let app = spawn_app().await;
    // Failures up to the limit are plain 401s.
    for i in 0..10 {
        let r = app.api_get("/api/tickets", &format!("guess-{i:012}")).await;
        assert_eq!(r.status(), 401, "guess {i}");
    }
    // Then every attempt from the address is refused, the right token too: a guesser must not learn
    // that a guess was right.
    for token in ["guess-again-000001", EDITOR] {
        let r = app.api_get("/api/tickets", token).await;
        assert_eq!(r.status(), 429, "{token}");
        let retry: u64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(retry > 0 && retry <= 15 * 60, "{retry}");
        let v = expect(r, 429).await;
        assert_eq!(v["error"], "overloaded", "{v}");
        assert!(
            v["detail"].as_str().unwrap().contains("too many failed"),
            "{v}"
        );
    }
    // The sign-in form is throttled from the same count.
    let client = no_redirects();
    let r = post_token(&client, &app.base, EDITOR).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    // Once the failures are older than the window, the right token works again.
    app.advance(Duration::from_secs(15 * 60));
    assert_eq!(app.api_get("/api/tickets", EDITOR).await.status(), 200);
}

#[tokio::test]
async fn failed_sign_ins_count_too() {
    let app = spawn_app().await;
    let client = no_redirects();
    for i in 0..10 {
        let r = post_token(&client, &app.base, &format!("wrong-token-{i:06}")).await;
        assert_eq!(r.status(), 401, "attempt {i}");
    }
    let r = post_token(&client, &app.base, EDITOR).await;
    assert_eq!(r.status(), 429);
    assert!(set_cookies(&r).is_empty());
    assert_eq!(app.api_get("/api/tickets", EDITOR).await.status(), 429);
}

#[tokio::test]
async fn behind_https_cookies_use_the_host_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = config_yaml(&dir.path().join("tocsin.db"), "")
        .replace("public_url: http://", "public_url: https://");
    let app = spawn_app_with_yaml(dir, yaml).await;
    let client = no_redirects();
    let r = client
        .get(format!("{}/login", app.base))
        .send()
        .await
        .unwrap();
    let login = set_cookies(&r).join("\n");
    assert!(login.starts_with("__Host-tocsin_login="), "{login}");
    assert!(
        login.contains("Path=/;") && login.contains("Secure"),
        "{login}"
    );
    let cookie = session_set_cookie(&client, &app.base, EDITOR).await;
    assert!(cookie.starts_with("__Host-tocsin_session="), "{cookie}");
    let attrs: Vec<&str> = cookie.split(';').map(str::trim).collect();
    assert!(
        attrs.contains(&"Secure") && attrs.contains(&"Path=/"),
        "{cookie}"
    );
    assert!(!cookie.contains("Domain"), "{cookie}");
    // The prefixed cookie signs in; the same value without the prefix does not.
    let session = attrs[0].to_string();
    assert_eq!(api_status(&client, &app.base, &session).await, 200);
    let bare = session.trim_start_matches("__Host-").to_string();
    assert_eq!(api_status(&client, &app.base, &bare).await, 401);

    // Plain http (local development) keeps plain names.
    let plain = spawn_app().await;
    let cookie = session_set_cookie(&client, &plain.base, EDITOR).await;
    assert!(cookie.starts_with("tocsin_session="), "{cookie}");
}

#[tokio::test]
async fn the_unsubscribe_page_has_a_content_security_policy_and_is_never_framed() {
    let app = spawn_app_with(
        "email:\n  smtp: smtp://127.0.0.1:9\n  from: tocsin@example.test\n  secret: a-test-secret-of-32-characters!!\n",
    )
    .await;
    let token = app
        .app
        .state
        .tokens
        .as_ref()
        .unwrap()
        .unsubscribe_token("bob");
    let client = no_redirects();
    for (method, path) in [
        ("GET", format!("/unsubscribe/{token}")),
        ("POST", format!("/unsubscribe/{token}")),
        ("POST", format!("/unsubscribe/{token}/resubscribe")),
        ("GET", "/unsubscribe/bob.forged".to_string()),
    ] {
        let url = format!("{}{path}", app.base);
        let r = match method {
            "GET" => client.get(url),
            _ => client.post(url),
        }
        .send()
        .await
        .unwrap();
        let h = r.headers().clone();
        assert!(
            h["content-type"].to_str().unwrap().starts_with("text/html"),
            "{path}"
        );
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        // The page's own stylesheet is allowed by its hash, nothing else inline.
        assert!(csp.contains("style-src 'sha256-"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
    }
}

#[tokio::test]
async fn the_ticket_list_page_refuses_control_characters_in_its_filters() {
    let app = spawn_app().await;
    let client = no_redirects();
    let session = session(&client, &app.base, VIEWER).await;
    for (query, param) in [
        ("q=%00", "q"),
        ("source=a%00", "source"),
        ("room=%07", "room"),
    ] {
        let r = client
            .get(format!("{}/?{query}", app.base))
            .header("cookie", &session)
            .send()
            .await
            .unwrap();
        let v = expect(r, 400).await;
        assert!(
            v["detail"]
                .as_str()
                .unwrap()
                .contains(&format!("`{param}`")),
            "{query}: {v}"
        );
    }
    let r = client
        .get(format!("{}/tickets/T-1%00", app.base))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}
