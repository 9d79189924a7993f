//! Live readers woken on commit: one connection per process LISTENs on the feed channel, so a commit
//! made by any instance sharing the database moves this process's feed watch. It reconnects by itself
//! and, after each (re)connect, reads the feed's head once, so nothing notified while it was away is
//! missed.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::watch;
use tokio_postgres::AsyncMessage;

use super::{Target, FEED_CHANNEL};

/// Moves the watch forward to `last` (never back: notifications can arrive out of order).
pub(super) fn advance(feed: &watch::Sender<i64>, last: i64) {
    feed.send_if_modified(|v| {
        if last > *v {
            *v = last;
            true
        } else {
            false
        }
    });
}

/// The listening task; stopped when dropped.
pub(super) struct Listener(tokio::task::JoinHandle<()>);

impl Drop for Listener {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Listener {
    pub(super) fn start(target: Arc<Target>, feed: Arc<watch::Sender<i64>>) -> Listener {
        Listener(tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                match listen_once(&target, &feed).await {
                    Ok(()) => backoff = Duration::from_millis(100),
                    Err(e) => {
                        let error = super::describe(&e);
                        tracing::warn!(url = %target.shown, %error, "Lost the connection that wakes live streams; reconnecting.");
                    }
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }))
    }
}

/// One connection's life: LISTEN, catch up, then follow notifications until it ends.
async fn listen_once(
    target: &Target,
    feed: &watch::Sender<i64>,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = target.config.connect(target.tls.clone()).await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(n.payload().to_string()).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    });
    client
        .batch_execute(&format!("LISTEN {FEED_CHANNEL}"))
        .await?;
    let head: i64 = client
        .query_one("SELECT COALESCE(MAX(id), 0) FROM feed", &[])
        .await?
        .get(0);
    advance(feed, head);
    while let Some(payload) = rx.recv().await {
        if let Ok(last) = payload.parse::<i64>() {
            advance(feed, last);
        }
    }
    match driver.await {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}
