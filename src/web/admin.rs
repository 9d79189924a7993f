//! The admin page: dead deliveries (with Retry), dead journal rows (alerts that could not be
//! processed, with Retry and Delete), alerts plugins dropped, and the cluster (instances, leases,
//! rooms' backlogs).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::html::{esc, layout, message, page, time};
use super::session::Session;
use crate::cluster::ClusterView;
use crate::config::Role;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::DeadJournal;

/// Longest part of a dead row's stored text shown on the page (the API has all of it).
const SHOWN: usize = 300;

/// `GET /admin`: dead deliveries (with Retry) and dropped alerts. Admins only.
pub async fn admin(State(state): State<AppState>, session: Session) -> Result<Response, ApiError> {
    if session.member.role < Role::Admin {
        return Ok(message(
            StatusCode::FORBIDDEN,
            Some(&session),
            "Admins only",
            &format!(
                "{} is a {}; this page needs the admin role.",
                session.member.name,
                session.member.role.as_str()
            ),
        ));
    }
    let dead = state.store.outbox_dead(100).await?;
    let dropped = state.store.dropped(100).await?;
    let mut body = String::from("<section class=\"card\"><h1>Dead deliveries</h1>");
    if dead.is_empty() {
        body.push_str("<p class=\"empty\">None: every message was delivered or is on its way.</p>");
    } else {
        body.push_str(
            "<table class=\"dead\"><thead><tr><th>#</th><th>Room</th><th>Ticket</th><th>Kind</th>\
             <th>Attempts</th><th>Last error</th><th>Created</th><th></th></tr></thead><tbody>",
        );
        for d in &dead {
            let ticket = d.ticket_id.as_deref().map_or("—".to_string(), |id| {
                format!("<a href=\"/tickets/{0}\">{0}</a>", esc(id))
            });
            body.push_str(&format!(
                "<tr data-delivery=\"{id}\"><td>{id}</td><td>{room}</td><td class=\"mono\">{ticket}</td>\
                 <td>{kind}</td><td>{attempts}</td><td class=\"error-text\">{error}</td><td class=\"nowrap\">{at}</td>\
                 <td><button type=\"button\" class=\"retry\" data-id=\"{id}\">Retry</button></td></tr>",
                id = d.id,
                room = esc(&d.room),
                kind = d.kind.as_str(),
                attempts = d.attempts,
                error = esc(d.last_error.as_deref().unwrap_or("")),
                at = time(d.created_at),
            ));
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("</section><section class=\"card\"><h1>Dropped alerts</h1>");
    if dropped.is_empty() {
        body.push_str("<p class=\"empty\">No plugin dropped an alert.</p>");
    } else {
        body.push_str(
            "<table class=\"dropped\"><thead><tr><th>When</th><th>Source</th><th>Alert</th><th>Plugin</th>\
             <th>Reason</th></tr></thead><tbody>",
        );
        for d in &dropped {
            body.push_str(&format!(
                "<tr><td class=\"nowrap\">{at}</td><td>{source}</td><td>{title}</td><td>{plugin}</td><td>{reason}</td></tr>",
                at = time(d.at),
                source = esc(&d.alert.source),
                title = esc(&d.alert.title),
                plugin = esc(&d.plugin),
                reason = esc(&d.reason),
            ));
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("</section>");
    dead_journal(&mut body, &state.store.dead_journal(100).await?);
    cluster(&mut body, &state.cluster.view().await?);
    Ok(page(
        StatusCode::OK,
        layout("Admin", Some(&session), "admin", &body),
    ))
}

fn dead_journal(body: &mut String, dead: &[DeadJournal]) {
    body.push_str("<section class=\"card\"><h1>Alerts that could not be processed</h1>");
    if dead.is_empty() {
        body.push_str("<p class=\"empty\">None: every accepted alert was processed.</p>");
    } else {
        body.push_str(
            "<table class=\"dead-journal\"><thead><tr><th>#</th><th>Journal row</th><th>Received</th>\
             <th>Why</th><th>Stored alert</th><th></th></tr></thead><tbody>",
        );
        for d in dead {
            let shown: String = d.alert.chars().take(SHOWN).collect();
            let more = if d.alert.chars().count() > SHOWN {
                "…"
            } else {
                ""
            };
            body.push_str(&format!(
                "<tr data-dead-journal=\"{id}\"><td>{id}</td><td>{row}</td><td class=\"nowrap\">{at}</td>\
                 <td class=\"error-text\">{reason}</td><td class=\"mono\">{shown}{more}</td>\
                 <td><button type=\"button\" class=\"journal-retry\" data-id=\"{id}\">Retry</button> \
                 <button type=\"button\" class=\"journal-delete\" data-id=\"{id}\">Delete</button></td></tr>",
                id = d.id,
                row = d.journal_id,
                at = time(d.received_at),
                reason = esc(&d.reason),
                shown = esc(&shown),
            ));
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("</section>");
}

fn cluster(body: &mut String, view: &ClusterView) {
    body.push_str(&format!(
        "<section class=\"card\"><h1>Cluster</h1><p>This page came from <span class=\"mono\">{}</span>; \
         leases last {} ms.</p>",
        esc(&view.instance),
        view.lease_ttl_ms
    ));
    body.push_str(
        "<table class=\"instances\"><thead><tr><th>Instance</th><th>Address</th><th>Version</th>\
         <th>Started</th><th>Last heartbeat</th><th>State</th><th>Leases</th></tr></thead><tbody>",
    );
    for i in &view.instances {
        body.push_str(&format!(
            "<tr data-instance=\"{id}\"><td class=\"mono\">{id}</td><td class=\"mono\">{address}</td>\
             <td>{version}</td><td class=\"nowrap\">{started}</td><td class=\"nowrap\">{heartbeat}</td>\
             <td>{state}</td><td>{leases}</td></tr>",
            id = esc(&i.instance.id),
            address = esc(&i.instance.address),
            version = esc(&i.instance.version),
            started = time(i.instance.started_at),
            heartbeat = time(i.instance.heartbeat_at),
            state = i.state,
            leases = esc(&i.leases.join(", ")),
        ));
    }
    body.push_str("</tbody></table>");
    if !view.rooms.is_empty() {
        body.push_str(
            "<table class=\"backlog\"><thead><tr><th>Room</th><th>Pending</th></tr></thead><tbody>",
        );
        for r in &view.rooms {
            body.push_str(&format!(
                "<tr><td>{}</td><td>{}</td></tr>",
                esc(&r.room),
                r.pending
            ));
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("</section>");
}
