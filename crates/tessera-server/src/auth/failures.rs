//! Failed authentications go to the audit log, written off the request path.
//!
//! The request only `try_send`s an event into a bounded channel; a background task writes
//! batches in one transaction each. If a flood of bad keys fills the channel, further events
//! are counted in `tessera_audit_failure_events_dropped_total` instead of slowing requests.
//! The event records the reason and, when the key exists, its id and team, never the secret.

use tessera_domain::audit::{AuditAction, AuditChange, AuditContext};
use tessera_store::Store;
use tessera_store::audit::StandaloneEvent;
use tokio::sync::mpsc;

pub const CHANNEL_CAPACITY: usize = 10_000;
const MAX_BATCH: usize = 500;

use crate::auth::credentials::Scheme;
use crate::auth::verifier::Rejection;

pub fn failure_event(
    rejection: &Rejection,
    scheme: Option<Scheme>,
    context: AuditContext,
) -> StandaloneEvent {
    let (target_type, target_id) = match &rejection.key_id {
        Some(key_id) => ("api_key", key_id.to_string()),
        None => ("credential", "unknown".to_owned()),
    };
    StandaloneEvent {
        team_id: rejection.team_id.clone(),
        context,
        change: AuditChange {
            action: AuditAction::AuthFailure,
            target_type,
            target_id,
            details: serde_json::json!({
                "reason": rejection.reason.as_str(),
                "scheme": scheme.map(Scheme::as_str),
            }),
        },
    }
}

/// Writes events in batches until `shutdown` flips, then writes what is still queued.
pub async fn run_writer(
    store: Store,
    mut events: mpsc::Receiver<StandaloneEvent>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        tokio::select! {
            received = events.recv_many(&mut batch, MAX_BATCH) => {
                if received == 0 {
                    return;
                }
                write(&store, &mut batch).await;
            }
            _ = shutdown.changed() => break,
        }
    }
    while let Ok(event) = events.try_recv() {
        batch.push(event);
        if batch.len() == MAX_BATCH {
            write(&store, &mut batch).await;
        }
    }
    write(&store, &mut batch).await;
}

async fn write(store: &Store, batch: &mut Vec<StandaloneEvent>) {
    if batch.is_empty() {
        return;
    }
    if let Err(err) = store.append_standalone_events(batch).await {
        tracing::error!(error = %err, n_events = batch.len(), "Could not write failed-authentication audit events");
    }
    batch.clear();
}
