//! Plugins' key-value stores: upserts and deletes saved in one write (a key's last change in it wins),
//! overwrites, expiry honoured on reading (an expired entry never comes back), each plugin's entries
//! apart from the others'.

use std::sync::Arc;

use tocsin::domain::time::Timestamp;
use tocsin::store::{KvChange, KvEntry, Store};

use super::support::T0;

fn at(offset_ms: i64) -> Timestamp {
    Timestamp::from_millis(T0 + offset_ms)
}

fn entry(key: &str, value: &str, expires_at: Option<Timestamp>) -> KvEntry {
    KvEntry {
        key: key.into(),
        value: value.into(),
        expires_at,
    }
}

fn put(key: &str, value: &str, expires_at: Option<Timestamp>) -> KvChange {
    KvChange::Put(entry(key, value, expires_at))
}

pub async fn plugin_kv_saves_expires_and_keeps_plugins_apart(store: Arc<dyn Store>) {
    assert_eq!(store.plugin_kv("flap", at(0)).await.unwrap(), vec![]);

    store
        .write_plugin_kv(
            "flap",
            vec![
                put("hold:prom/b", "pending:1", Some(at(1_000))),
                put("hold:prom/a", "sent:1", None),
                put("gone", "x", None),
                KvChange::Delete("gone".into()),
                KvChange::Delete("never-there".into()),
            ],
            at(0),
        )
        .await
        .unwrap();
    store
        .write_plugin_kv("rate", vec![put("hold:prom/a", "other", None)], at(0))
        .await
        .unwrap();
    assert_eq!(
        store.plugin_kv("flap", at(0)).await.unwrap(),
        vec![
            entry("hold:prom/a", "sent:1", None),
            entry("hold:prom/b", "pending:1", Some(at(1_000))),
        ],
        "by key; a key deleted in the same write is gone"
    );
    assert_eq!(
        store.plugin_kv("rate", at(0)).await.unwrap(),
        vec![entry("hold:prom/a", "other", None)],
        "plugins keep their own keys"
    );

    // Overwriting replaces value and expiry; a later delete removes it.
    store
        .write_plugin_kv(
            "flap",
            vec![
                put("hold:prom/a", "sent:2", Some(at(5_000))),
                KvChange::Delete("hold:prom/b".into()),
            ],
            at(10),
        )
        .await
        .unwrap();
    assert_eq!(
        store.plugin_kv("flap", at(10)).await.unwrap(),
        vec![entry("hold:prom/a", "sent:2", Some(at(5_000)))]
    );
    assert_eq!(
        store.plugin_kv("rate", at(10)).await.unwrap(),
        vec![entry("hold:prom/a", "other", None)],
        "another plugin's delete of the same key leaves this one's"
    );

    // Expiry on reading: at its expiry an entry no longer counts.
    assert_eq!(store.plugin_kv("flap", at(4_999)).await.unwrap().len(), 1);
    assert_eq!(store.plugin_kv("flap", at(5_000)).await.unwrap(), vec![]);

    // An expired entry never comes back, even read at an earlier time after a write deleted it:
    // writing clears the plugin's expired entries, and only that plugin's.
    store
        .write_plugin_kv("flap", vec![put("fresh", "1", Some(at(20_000)))], at(6_000))
        .await
        .unwrap();
    assert_eq!(
        store.plugin_kv("flap", at(0)).await.unwrap(),
        vec![entry("fresh", "1", Some(at(20_000)))]
    );
    store
        .write_plugin_kv("rate", vec![put("ttl", "t", Some(at(7_000)))], at(0))
        .await
        .unwrap();
    store
        .write_plugin_kv("flap", vec![], at(8_000))
        .await
        .unwrap();
    assert_eq!(
        store.plugin_kv("rate", at(0)).await.unwrap().len(),
        2,
        "a write of flap does not clear rate's entries"
    );

    // Values as large as a plugin may write, and text beyond ASCII, come back unchanged.
    let big = "é".repeat(32 * 1024);
    store
        .write_plugin_kv("flap", vec![put("big", &big, None)], at(8_000))
        .await
        .unwrap();
    let all = store.plugin_kv("flap", at(8_000)).await.unwrap();
    assert_eq!(all[0], entry("big", &big, None));
}

/// A write's changes apply in order, a key ending as its last change left it, however many keys a
/// write carries (a plugin saves one per alert it holds: a batch of new alerts is hundreds).
pub async fn plugin_kv_a_keys_last_change_in_a_write_wins(store: Arc<dyn Store>) {
    store
        .write_plugin_kv(
            "flap",
            vec![put("back", "old", None), put("twice", "first", None)],
            at(0),
        )
        .await
        .unwrap();
    let mut changes: Vec<KvChange> = (0..300)
        .map(|i| put(&format!("hold:prom/{i:03}"), &format!("pending:{i}"), None))
        .collect();
    changes.extend([
        KvChange::Delete("back".into()),
        put("back", "new", Some(at(9_000))),
        put("twice", "second", None),
        put("twice", "third", None),
        put("hold:prom/007", "sent:7", None),
        KvChange::Delete("hold:prom/008".into()),
    ]);
    store
        .write_plugin_kv("flap", changes, at(10))
        .await
        .unwrap();
    let all = store.plugin_kv("flap", at(10)).await.unwrap();
    assert_eq!(
        all.len(),
        2 + 299,
        "300 held keys but the one deleted after, and two others"
    );
    let value = |key: &str| all.iter().find(|e| e.key == key).cloned();
    assert_eq!(value("back"), Some(entry("back", "new", Some(at(9_000)))));
    assert_eq!(value("twice"), Some(entry("twice", "third", None)));
    assert_eq!(
        value("hold:prom/007"),
        Some(entry("hold:prom/007", "sent:7", None))
    );
    assert_eq!(value("hold:prom/008"), None);
    assert_eq!(
        value("hold:prom/299"),
        Some(entry("hold:prom/299", "pending:299", None))
    );
}
