//! Alertmanager's API v2 over tocsin: every answer validated against Alertmanager's own OpenAPI
//! document (tests/fixtures/alertmanager/openapi.yaml), filters, silences both ways, credentials,
//! Karma's reads as Karma makes them, and Debian's amtool 0.25 against tocsin.

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::*;
use serde_json::{json, Value};

/// Rooms `db` and `ops`; team=db goes to db and on, critical and warning alerts go to ops.
const ROUTING: &str = "rooms:\n  \
    ops: {sink: {kind: webhook, url: \"http://127.0.0.1:9/ops?token=room-secret\"}}\n  \
    db: {sink: {kind: webhook, url: \"http://127.0.0.1:9/db\"}}\n\
    routes:\n  \
    - {match: {team: db}, rooms: [db], continue: true}\n  \
    - {match_re: {severity: \"critical|warning\"}, rooms: [ops]}\n";

/// Checks `value` against a definition of Alertmanager's OpenAPI document, and says why not.
fn validate(definition: &str, value: &Value) {
    let errors = schema_errors(definition, value);
    assert!(
        errors.is_empty(),
        "not a valid {definition}: {errors:#?}\n{value:#}"
    );
}

/// What is wrong with `value` as the document's `definition`.
fn schema_errors(definition: &str, value: &Value) -> Vec<String> {
    schema_errors_at(&format!("/definitions/{definition}"), value)
}

/// Checks `value` against the schema at a JSON pointer into the document (a response of a path).
fn validate_at(pointer: &str, value: &Value) {
    let errors = schema_errors_at(pointer, value);
    assert!(
        errors.is_empty(),
        "not valid at {pointer}: {errors:#?}\n{value:#}"
    );
}

/// What is wrong with `value` as the schema at `pointer` in the document.
fn schema_errors_at(pointer: &str, value: &Value) -> Vec<String> {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/alertmanager/openapi.yaml"),
    )
    .unwrap();
    let doc: Value = serde_yaml::from_str(&text).unwrap();
    let mut schema = doc
        .pointer(pointer)
        .unwrap_or_else(|| panic!("{pointer} is not in the document"))
        .clone();
    schema["definitions"] = doc["definitions"].clone();
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft4)
        .should_validate_formats(true)
        .build(&schema)
        .unwrap();
    validator
        .iter_errors(value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn the_schema_check_refuses_what_the_document_does() {
    let good = json!({"state": "active", "silencedBy": [], "inhibitedBy": []});
    assert!(schema_errors("alertStatus", &good).is_empty());
    let bad_state = json!({"state": "firing", "silencedBy": [], "inhibitedBy": []});
    assert_eq!(schema_errors("alertStatus", &bad_state).len(), 1);
    assert!(!schema_errors("gettableAlerts", &json!([{"labels": {}}])).is_empty());
    let silence = json!({"id": "x", "status": {"state": "active"}, "updatedAt": "yesterday",
        "matchers": [{"name": "a", "value": "b", "isRegex": false}], "startsAt": "2026-01-01T00:00:00Z",
        "endsAt": "2026-01-01T01:00:00Z", "createdBy": "bob", "comment": "c"});
    assert_eq!(schema_errors("gettableSilence", &silence).len(), 1);
}

fn prom(name: &str, labels: Value, app: &TestApp) -> Value {
    let mut a = prom_alert(
        name,
        Some(app.now()),
        Some(app.now().plus(Duration::from_secs(240))),
    );
    for (k, v) in labels.as_object().unwrap() {
        a["labels"][k] = v.clone();
    }
    a
}

async fn get(app: &TestApp, path: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = app.client.get(format!("{}{path}", app.base));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

/// Three tickets: DiskFull (team db, critical), ApiSlow (warning, silenced), Info (no route).
async fn three_alerts(app: &TestApp) -> String {
    let alerts = json!([
        prom(
            "DiskFull",
            json!({"team": "db", "severity": "critical"}),
            app
        ),
        prom("ApiSlow", json!({"severity": "warning", "job": "api"}), app),
        prom("Info", json!({"severity": "info"}), app),
    ]);
    expect(app.prom(alerts).await, 200).await;
    app.process().await;
    let posted = json!({
        "matchers": [{"name": "alertname", "value": "ApiSlow", "isRegex": false, "isEqual": true}],
        "startsAt": app.now().to_rfc3339(),
        "endsAt": app.now().plus(Duration::from_secs(3600)).to_rfc3339(),
        "createdBy": "someone-else",
        "comment": "deploying the api",
    });
    let r = expect(
        app.api_post("/api/v2/silences", EDITOR, Some(posted)).await,
        200,
    )
    .await;
    validate_at("/paths/~1silences/post/responses/200/schema", &r);
    r["silenceID"].as_str().unwrap().to_string()
}

fn names(alerts: &Value) -> Vec<&str> {
    let mut v: Vec<&str> = alerts
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["labels"]["alertname"].as_str().unwrap())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn every_answer_validates_against_alertmanagers_openapi_document() {
    let app = spawn_app_with(ROUTING).await;
    let silence = three_alerts(&app).await;
    assert_eq!(silence.len(), 36, "{silence}");

    let alerts = expect(get(&app, "/api/v2/alerts", Some(VIEWER)).await, 200).await;
    validate("gettableAlerts", &alerts);
    assert_eq!(names(&alerts), ["ApiSlow", "DiskFull", "Info"]);
    let by_name = |n: &str| {
        alerts
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["labels"]["alertname"] == n)
            .unwrap()
            .clone()
    };
    let disk = by_name("DiskFull");
    assert_eq!(disk["receivers"], json!([{"name": "db"}, {"name": "ops"}]));
    assert_eq!(disk["status"]["state"], "active");
    assert_eq!(disk["startsAt"], app.now().to_rfc3339());
    let slow = by_name("ApiSlow");
    assert_eq!(slow["status"]["state"], "suppressed");
    assert_eq!(slow["status"]["silencedBy"], json!([silence]));
    assert_eq!(by_name("Info")["receivers"], json!([{"name": "tocsin"}]));

    let groups = expect(get(&app, "/api/v2/alerts/groups", Some(VIEWER)).await, 200).await;
    validate("alertGroups", &groups);
    let summary: Vec<(String, Vec<&str>)> = groups
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["receiver"]["name"].as_str().unwrap().to_string(),
                names(&g["alerts"]),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("db".to_string(), vec!["DiskFull"]),
            ("ops".to_string(), vec!["ApiSlow", "DiskFull"]),
            ("tocsin".to_string(), vec!["Info"]),
        ]
    );

    let silences = expect(get(&app, "/api/v2/silences", Some(VIEWER)).await, 200).await;
    validate("gettableSilences", &silences);
    let one = expect(
        get(&app, &format!("/api/v2/silence/{silence}"), Some(VIEWER)).await,
        200,
    )
    .await;
    validate("gettableSilence", &one);
    assert_eq!(one["status"]["state"], "active");
    // The author is the member whose token made it, not what the client wrote.
    assert_eq!(one["createdBy"], "bob");

    let receivers = expect(get(&app, "/api/v2/receivers", Some(VIEWER)).await, 200).await;
    assert_eq!(
        receivers,
        json!([{"name": "db"}, {"name": "ops"}, {"name": "tocsin"}])
    );
    for r in receivers.as_array().unwrap() {
        validate("receiver", r);
    }

    let status = expect(get(&app, "/api/v2/status", Some(VIEWER)).await, 200).await;
    validate("alertmanagerStatus", &status);
    assert_eq!(status["versionInfo"]["version"], "0.25.0");
    let original = status["config"]["original"].as_str().unwrap();
    assert!(!original.contains("room-secret"), "{original}");
    let tree: serde_yaml::Value = serde_yaml::from_str(original).unwrap();
    assert_eq!(tree["route"]["routes"][0]["receiver"], "db");

    // The same under the prometheus source's prefix.
    let prefixed = expect(
        get(&app, "/ingest/prom/api/v2/alerts", Some(VIEWER)).await,
        200,
    )
    .await;
    assert_eq!(prefixed, alerts);
}

#[tokio::test]
async fn filters_and_flags_choose_alerts_as_alertmanager_does() {
    let app = spawn_app_with(ROUTING).await;
    three_alerts(&app).await;
    let q = |query: &'static str| {
        let app = &app;
        async move {
            let v = expect(
                get(app, &format!("/api/v2/alerts?{query}"), Some(VIEWER)).await,
                200,
            )
            .await;
            names(&v).into_iter().map(String::from).collect::<Vec<_>>()
        }
    };
    assert_eq!(q("filter=alertname%3D%22DiskFull%22").await, ["DiskFull"]);
    assert_eq!(
        q("filter=severity%3D~%22crit.*%7Cinfo%22&filter=team!%3Ddb").await,
        ["Info"]
    );
    assert_eq!(q("silenced=false").await, ["DiskFull", "Info"]);
    assert_eq!(q("active=false").await, ["ApiSlow"]);
    assert_eq!(q("receiver=db").await, ["DiskFull"]);
    assert_eq!(q("receiver=o.*").await, ["ApiSlow", "DiskFull"]);
    let groups = expect(
        get(
            &app,
            "/api/v2/alerts/groups?receiver=ops&silenced=false",
            Some(VIEWER),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(groups.as_array().unwrap().len(), 1);
    assert_eq!(names(&groups[0]["alerts"]), ["DiskFull"]);

    // Bad parameters: 400 with a JSON string naming the problem, as Alertmanager answers.
    for bad in ["active=maybe", "filter=%3D%3Dx", "receiver=(", "colour=red"] {
        let r = get(&app, &format!("/api/v2/alerts?{bad}"), Some(VIEWER)).await;
        assert_eq!(r.status(), 400, "{bad}");
        let body: Value = r.json().await.unwrap();
        validate_at("/responses/BadRequest/schema", &body);
    }
}

#[tokio::test]
async fn silences_are_the_same_both_ways_and_are_replaced_and_expired() {
    let app = spawn_app_with(ROUTING).await;
    let posted = json!({
        "matchers": [
            {"name": "job", "value": "a.*", "isRegex": true, "isEqual": false},
            {"name": "env", "value": "prod", "isRegex": false},
        ],
        "startsAt": "2020-01-01T00:00:00Z",
        "endsAt": app.now().plus(Duration::from_secs(7200)).to_rfc3339(),
        "createdBy": "bob",
        "comment": "maintenance",
    });
    let id = expect(
        app.api_post("/api/v2/silences", EDITOR, Some(posted.clone()))
            .await,
        200,
    )
    .await["silenceID"]
        .as_str()
        .unwrap()
        .to_string();
    // tocsin's own API shows the same silence, with both operators; a start in the past is now.
    let ours = expect(app.api_get("/api/silences", VIEWER).await, 200).await;
    let s = &ours["silences"][0];
    assert_eq!(s["matchers_text"], json!(["job!~\"a.*\"", "env=\"prod\""]));
    assert_eq!(s["starts_at"], app.now().to_rfc3339());
    assert_eq!(
        id,
        format!("00000000-0000-4000-8000-{:012x}", s["id"].as_i64().unwrap())
    );
    let am = expect(
        get(&app, &format!("/api/v2/silence/{id}"), Some(VIEWER)).await,
        200,
    )
    .await;
    assert_eq!(
        am["matchers"],
        json!([
            {"name": "job", "value": "a.*", "isRegex": true, "isEqual": false},
            {"name": "env", "value": "prod", "isRegex": false, "isEqual": true},
        ])
    );

    // An update (POST with the id) replaces it: a new id, the old one expired.
    let mut update = posted.clone();
    update["id"] = json!(id);
    update["comment"] = json!("longer maintenance");
    let new_id = expect(
        app.api_post("/api/v2/silences", EDITOR, Some(update)).await,
        200,
    )
    .await["silenceID"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(new_id, id);
    let old = expect(
        get(&app, &format!("/api/v2/silence/{id}"), Some(VIEWER)).await,
        200,
    )
    .await;
    assert_eq!(old["status"]["state"], "expired");
    let filtered = expect(
        get(
            &app,
            "/api/v2/silences?filter=env%3Dprod&creator=bob",
            Some(VIEWER),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(filtered.as_array().unwrap().len(), 2);

    // Expire it; then it reads expired. Unknown ids are 404; ids that are not ids, 400.
    let r = app
        .client
        .delete(format!("{}/api/v2/silence/{new_id}", app.base))
        .bearer_auth(EDITOR)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let gone = expect(
        get(&app, &format!("/api/v2/silence/{new_id}"), Some(VIEWER)).await,
        200,
    )
    .await;
    assert_eq!(gone["status"]["state"], "expired");
    let missing = "00000000-0000-4000-8000-0000000003e7";
    assert_eq!(
        get(&app, &format!("/api/v2/silence/{missing}"), Some(VIEWER))
            .await
            .status(),
        404
    );
    assert_eq!(
        get(&app, "/api/v2/silence/nonsense", Some(VIEWER))
            .await
            .status(),
        400
    );

    // A silence tocsin would refuse is refused here too, with the reason.
    let mut everything = posted;
    everything["matchers"] = json!([{"name": "job", "value": ".*", "isRegex": true}]);
    let r = app
        .api_post("/api/v2/silences", EDITOR, Some(everything))
        .await;
    assert_eq!(r.status(), 400);
    let reason: Value = r.json().await.unwrap();
    assert!(reason.as_str().unwrap().contains("every"), "{reason}");
}

#[tokio::test]
async fn writes_need_an_editor_and_reads_a_member_unless_open() {
    let app = spawn_app_with(ROUTING).await;
    let silence = three_alerts(&app).await;
    let basic = |name: &str, token: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{name}:{token}"))
        )
    };
    let with_auth = |auth: String| {
        app.client
            .get(format!("{}/api/v2/alerts", app.base))
            .header("authorization", auth)
            .send()
    };
    assert_eq!(get(&app, "/api/v2/alerts", None).await.status(), 401);
    assert_eq!(
        with_auth(basic("carol", VIEWER)).await.unwrap().status(),
        200
    );
    // The name must be the token's member's.
    assert_eq!(
        with_auth(basic("alice", VIEWER)).await.unwrap().status(),
        401
    );
    assert_eq!(
        with_auth(basic("carol", "wrong")).await.unwrap().status(),
        401
    );

    let expire = |token: &'static str| {
        app.client
            .delete(format!("{}/api/v2/silence/{silence}", app.base))
            .bearer_auth(token)
            .send()
    };
    let r = expire(VIEWER).await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.json::<Value>().await.unwrap().is_string());
    let r = app
        .client
        .delete(format!("{}/api/v2/silence/{silence}", app.base))
        .header("authorization", basic("bob", EDITOR))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // read: open lets anyone read, and still no one write without a token.
    let open = spawn_app_with(&format!("{ROUTING}alertmanager_api: {{read: open}}\n")).await;
    assert_eq!(get(&open, "/api/v2/alerts", None).await.status(), 200);
    assert_eq!(get(&open, "/api/v2/status", None).await.status(), 200);
    let r = open
        .client
        .post(format!("{}/api/v2/silences", open.base))
        .json(
            &json!({"matchers": [], "startsAt": "", "endsAt": "", "createdBy": "", "comment": ""}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn every_error_is_json_and_health_answers_by_alertmanagers_names() {
    let app = spawn_app_with(ROUTING).await;
    // A method a path does not take: 405 with a JSON body, not axum's empty one.
    let r = app
        .client
        .put(format!("{}/api/v2/alerts", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "method_not_allowed");
    // The API is served under prometheus sources only.
    let r = get(&app, "/ingest/am/api/v2/alerts", Some(VIEWER)).await;
    assert_eq!(r.status(), 404);
    assert!(r
        .json::<Value>()
        .await
        .unwrap()
        .as_str()
        .unwrap()
        .contains("prometheus"));
    for path in [
        "/-/healthy",
        "/-/ready",
        "/ingest/prom/-/healthy",
        "/ingest/prom/-/ready",
    ] {
        assert_eq!(get(&app, path, None).await.status(), 200, "{path}");
    }
}

/// Karma reads `status`, then `alerts/groups` and `silences` without parameters (its
/// internal/mapper/v017/api.go), with basic auth from the Alertmanager URL's user and password, and
/// dereferences these fields without checking them.
#[tokio::test]
async fn karma_reads_groups_and_silences_as_it_does() {
    let app = spawn_app_with(ROUTING).await;
    three_alerts(&app).await;
    let base = app
        .base
        .replace("http://", "http://carol:viewer-token-0001@");
    let karma = reqwest::Client::new();
    let read = |path: &'static str| {
        let url = reqwest::Url::parse(&format!("{base}{path}")).unwrap();
        let user = url.username().to_string();
        let pass = url.password().map(str::to_string);
        let mut plain = url.clone();
        plain.set_username("").unwrap();
        plain.set_password(None).unwrap();
        karma.get(plain).basic_auth(user, pass).send()
    };
    let status: Value = read("/api/v2/status").await.unwrap().json().await.unwrap();
    let version = status["versionInfo"]["version"].as_str().unwrap();
    let parts: Vec<u64> = version.split('.').map(|p| p.parse().unwrap()).collect();
    assert!(
        parts.len() == 3 && (parts[0], parts[1]) >= (0, 17),
        "{version}"
    );

    let groups: Value = read("/api/v2/alerts/groups")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for g in groups.as_array().unwrap() {
        assert!(g["receiver"]["name"].is_string());
        assert!(g["labels"].is_object());
        for a in g["alerts"].as_array().unwrap() {
            for key in ["fingerprint", "startsAt", "generatorURL"] {
                assert!(a[key].is_string(), "{key} in {a}");
            }
            assert!(a["status"]["state"].is_string());
            assert!(a["status"]["inhibitedBy"].is_array());
            assert!(a["status"]["silencedBy"].is_array());
            assert!(a["annotations"].is_object() && a["labels"].is_object());
        }
    }
    let silences: Value = read("/api/v2/silences")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(silences.as_array().unwrap().len(), 1);
    for s in silences.as_array().unwrap() {
        for key in ["id", "startsAt", "endsAt", "createdBy", "comment"] {
            assert!(s[key].is_string(), "{key} in {s}");
        }
        for m in s["matchers"].as_array().unwrap() {
            assert!(m["name"].is_string() && m["value"].is_string());
            assert!(
                m["isRegex"].is_boolean() && m["isEqual"].is_boolean(),
                "{m}"
            );
        }
    }
}

/// Runs Debian's amtool 0.25 against tocsin with an editor's basic auth; returns stdout, and fails
/// on a non-zero exit or a version warning.
async fn amtool(app: &TestApp, args: &[&str]) -> String {
    let http_config = app.dir.path().join("amtool-http.yml");
    std::fs::write(
        &http_config,
        format!("basic_auth:\n  username: bob\n  password: {EDITOR}\n"),
    )
    .unwrap();
    let out = tokio::process::Command::new(monitoring_tool("root/usr/bin/amtool"))
        .arg(format!("--alertmanager.url={}/", app.base))
        .arg(format!("--http.config.file={}", http_config.display()))
        .args(args)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "amtool {args:?}: {stdout}\n{stderr}");
    assert!(
        !stderr.contains("Warning"),
        "amtool {args:?} warned: {stderr}"
    );
    stdout
}

#[tokio::test]
async fn amtool_queries_alerts_manages_silences_and_shows_the_config() {
    let app = spawn_app_real_clock_with(ROUTING).await;
    // No times: amtool and silences run on the wall clock, and the lease starts at arrival.
    let alert = |name: &str, labels: Value| {
        let mut a = prom_alert(name, None, None);
        for (k, v) in labels.as_object().unwrap() {
            a["labels"][k] = v.clone();
        }
        a
    };
    let alerts = json!([
        alert("DiskFull", json!({"team": "db", "severity": "critical"})),
        alert("ApiSlow", json!({"severity": "warning"})),
    ]);
    expect(app.prom(alerts).await, 200).await;
    app.process().await;

    let listed = amtool(&app, &["alert", "query"]).await;
    assert!(
        listed.contains("DiskFull") && listed.contains("ApiSlow"),
        "{listed}"
    );
    let only = amtool(&app, &["alert", "query", "alertname=DiskFull"]).await;
    assert!(
        only.contains("DiskFull") && !only.contains("ApiSlow"),
        "{only}"
    );

    let id = amtool(
        &app,
        &[
            "silence",
            "add",
            "alertname=ApiSlow",
            "-c",
            "deploy",
            "-d",
            "1h",
        ],
    )
    .await;
    let first = id.trim().to_string();
    assert_eq!(first.len(), 36, "{first}");
    // An update replaces the silence: amtool prints it with its new id (in a table: its `-q` prints a
    // pointer in 0.25).
    let table = amtool(
        &app,
        &["silence", "update", &first, "--comment=deploy of v2"],
    )
    .await;
    let id = table
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or("");
    let id = id.to_string();
    assert_eq!(id.len(), 36, "{id}");
    assert_ne!(id, first);
    let silenced = amtool(&app, &["alert", "query", "--silenced"]).await;
    assert!(
        silenced.contains("ApiSlow") && !silenced.contains("DiskFull"),
        "{silenced}"
    );
    let query = amtool(&app, &["silence", "query"]).await;
    assert!(
        query.contains(&id) && query.contains("deploy of v2"),
        "{query}"
    );
    assert!(!query.contains(&first), "{query}");

    // Export as JSON, expire, import: the import makes a new silence with the same matchers.
    let exported = amtool(&app, &["silence", "query", "-o", "json"]).await;
    let file = app.dir.path().join("silences.json");
    std::fs::write(&file, &exported).unwrap();
    amtool(&app, &["silence", "expire", &id]).await;
    let active = amtool(&app, &["silence", "query", "-q"]).await;
    assert!(active.trim().is_empty(), "{active}");
    amtool(&app, &["silence", "import", &file.display().to_string()]).await;
    let imported = amtool(&app, &["silence", "query", "-q"]).await;
    let imported = imported.trim();
    assert_eq!(imported.lines().count(), 1, "{imported}");
    assert_ne!(imported, id);

    let shown = amtool(&app, &["config", "show"]).await;
    assert!(shown.contains("receiver: ops"), "{shown}");
    let routes = amtool(&app, &["config", "routes"]).await;
    assert!(
        routes.contains("receiver: db") && routes.contains("receiver: ops"),
        "{routes}"
    );
    let tested = amtool(
        &app,
        &["config", "routes", "test", "team=db", "severity=critical"],
    )
    .await;
    assert_eq!(tested.trim(), "db,ops", "{tested}");
}
