//! Signing in to the web UI over plain HTTP (no browser): the form's nonce cookie and CSRF field, the
//! session cookie, and a page's CSRF token. Cookie names may carry the `__Host-` prefix.

#![allow(dead_code)] // not every test uses every helper

/// `Set-Cookie` values of a response.
pub fn set_cookies(r: &reqwest::Response) -> Vec<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

pub fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The sign-in form's nonce cookie (`name=value`) and CSRF field.
pub async fn login_form(client: &reqwest::Client, base: &str) -> (String, String) {
    let r = client.get(format!("{base}/login")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let cookie = set_cookies(&r)
        .into_iter()
        .find(|c| c.contains("tocsin_login="))
        .expect("the form sets its nonce cookie");
    let nonce = cookie.split(';').next().unwrap().to_string();
    let html = r.text().await.unwrap();
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the form has a csrf field")
        .to_string();
    (nonce, csrf)
}

/// Posts the sign-in form with `token`.
pub async fn post_token(client: &reqwest::Client, base: &str, token: &str) -> reqwest::Response {
    let (nonce, csrf) = login_form(client, base).await;
    client
        .post(format!("{base}/login"))
        .header("cookie", nonce)
        .form(&[("token", token), ("csrf", &csrf)])
        .send()
        .await
        .unwrap()
}

/// Signs in with `token`: the session cookie's whole `Set-Cookie` value.
pub async fn session_set_cookie(client: &reqwest::Client, base: &str, token: &str) -> String {
    let r = post_token(client, base, token).await;
    assert_eq!(r.status(), 303, "signing in with {token}");
    set_cookies(&r)
        .into_iter()
        .find(|c| c.contains("tocsin_session="))
        .expect("a session cookie")
}

/// Signs in with `token`: `name=value` to send back in `Cookie`.
pub async fn session(client: &reqwest::Client, base: &str, token: &str) -> String {
    session_set_cookie(client, base, token)
        .await
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

/// The CSRF token of a session, as the ticket list page carries it.
pub async fn page_csrf(client: &reqwest::Client, base: &str, session: &str) -> String {
    let r = client
        .get(format!("{base}/"))
        .header("cookie", session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    html.split("data-csrf=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the page carries its CSRF token")
        .to_string()
}

/// `GET /api/tickets` with a session cookie: the status.
pub async fn api_status(client: &reqwest::Client, base: &str, session: &str) -> u16 {
    client
        .get(format!("{base}/api/tickets"))
        .header("cookie", session)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Signs out with the form `POST /logout` and its CSRF field.
pub async fn sign_out(client: &reqwest::Client, base: &str, session: &str) {
    let csrf = page_csrf(client, base, session).await;
    let r = client
        .post(format!("{base}/logout"))
        .header("cookie", session)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "{:?}", r.text().await);
}
