//! The audit log: append inside the caller's transaction, list with keyset pagination, and
//! verify the hash chain.
//!
//! **Invariant:** every change a principal makes is written together with its event, in one
//! transaction (`append` takes the transaction's connection, never the pool). Events are never
//! updated or deleted; database triggers refuse both.

use sqlx::{AnyConnection, Row};
use tessera_domain::audit::{
    AuditAction, AuditChange, AuditContext, ChainedFields, GENESIS_HASH, SYSTEM_STREAM, chain_hash,
};
use tessera_domain::ids::{AuditEventId, TeamId};
use tessera_domain::time::Timestamp;

use crate::models::ts;
use crate::{Page, PageRequest, Store, StoreError, decode_cursor, encode_cursor};

/// One event, as the API lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    pub id: String,
    pub seq: i64,
    pub team_id: Option<String>,
    pub occurred_at: Timestamp,
    pub actor_type: String,
    pub actor_id: Option<String>,
    pub actor_key_id: Option<String>,
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub client_ip: Option<String>,
    pub request_id: Option<String>,
    pub details: serde_json::Value,
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor_id: Option<String>,
    pub action: Option<AuditAction>,
    pub target_id: Option<String>,
}

/// An audit event that is not part of a change: a failed authentication.
#[derive(Debug, Clone)]
pub struct StandaloneEvent {
    pub team_id: Option<TeamId>,
    pub context: AuditContext,
    pub change: AuditChange,
}

/// The result of checking one stream's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    pub events_checked: i64,
    pub problem: Option<ChainProblem>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainProblem {
    pub seq: i64,
    pub event_id: Option<String>,
    pub kind: ChainProblemKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainProblemKind {
    /// The event's content no longer matches its hash: it was altered.
    HashMismatch,
    /// The event does not follow the one before it: an event before it was removed or altered.
    BrokenLink,
    /// A sequence number is missing: an event was removed.
    MissingEvent,
    /// The stream's head points past the last event: the newest events were removed.
    TruncatedTail,
}

impl ChainProblemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChainProblemKind::HashMismatch => "hash_mismatch",
            ChainProblemKind::BrokenLink => "broken_link",
            ChainProblemKind::MissingEvent => "missing_event",
            ChainProblemKind::TruncatedTail => "truncated_tail",
        }
    }
}

pub(crate) fn team_stream(team_id: &TeamId) -> &str {
    team_id.as_str()
}

/// Appends one event to `team_id`'s stream (or the system stream), inside the caller's
/// transaction. The chain row is updated in the same statement that reads it, which serializes
/// appends to one stream on PostgreSQL and SQLite alike.
pub(crate) async fn append(
    conn: &mut AnyConnection,
    audit_key: &[u8; 32],
    team_id: Option<&TeamId>,
    context: &AuditContext,
    change: &AuditChange,
) -> Result<(), StoreError> {
    let stream = team_id.map(team_stream).unwrap_or(SYSTEM_STREAM);
    sqlx::query(
        "insert into audit_chains (stream, seq, head_hash) values ($1, 0, $2) \
         on conflict (stream) do nothing",
    )
    .bind(stream)
    .bind(GENESIS_HASH.to_vec())
    .execute(&mut *conn)
    .await?;
    let head =
        sqlx::query("update audit_chains set seq = seq + 1 where stream = $1 returning seq, head_hash")
            .bind(stream)
            .fetch_one(&mut *conn)
            .await?;
    let seq: i64 = head.try_get("seq")?;
    let prev_hash = hash_from(head.try_get("head_hash")?)?;

    let id = AuditEventId::generate();
    let details = change.details.to_string();
    let key_id = context.actor.key_id().map(|k| k.as_str().to_owned());
    let fields = ChainedFields {
        id: id.as_str(),
        stream,
        seq,
        team_id: team_id.map(TeamId::as_str),
        occurred_at: context.at.as_millis(),
        actor_type: context.actor.kind(),
        actor_id: context.actor.id(),
        actor_key_id: key_id.as_deref(),
        action: change.action.as_str(),
        target_type: Some(change.target_type),
        target_id: Some(&change.target_id),
        client_ip: context.client_ip.as_deref(),
        request_id: context.request_id.as_deref(),
        details: &details,
    };
    let hash = chain_hash(audit_key, &prev_hash, &fields);
    sqlx::query(
        "insert into audit_events (id, stream, seq, team_id, occurred_at, actor_type, actor_id, \
         actor_key_id, action, target_type, target_id, client_ip, request_id, details, prev_hash, hash) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(fields.id)
    .bind(fields.stream)
    .bind(fields.seq)
    .bind(fields.team_id)
    .bind(fields.occurred_at)
    .bind(fields.actor_type)
    .bind(fields.actor_id)
    .bind(fields.actor_key_id)
    .bind(fields.action)
    .bind(fields.target_type)
    .bind(fields.target_id)
    .bind(fields.client_ip)
    .bind(fields.request_id)
    .bind(fields.details)
    .bind(prev_hash.to_vec())
    .bind(hash.to_vec())
    .execute(&mut *conn)
    .await?;
    sqlx::query("update audit_chains set head_hash = $1 where stream = $2")
        .bind(hash.to_vec())
        .bind(stream)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

fn hash_from(bytes: Vec<u8>) -> Result<[u8; 32], StoreError> {
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| StoreError::Corrupt("hash length".into()))
}

const EVENT_COLUMNS: &str = "id, seq, team_id, occurred_at, actor_type, actor_id, actor_key_id, action, \
     target_type, target_id, client_ip, request_id, details";

fn event_from_row(row: &sqlx::any::AnyRow) -> Result<AuditEvent, StoreError> {
    let details: String = row.try_get("details")?;
    Ok(AuditEvent {
        id: row.try_get("id")?,
        seq: row.try_get("seq")?,
        team_id: row.try_get("team_id")?,
        occurred_at: ts(row.try_get("occurred_at")?),
        actor_type: row.try_get("actor_type")?,
        actor_id: row.try_get("actor_id")?,
        actor_key_id: row.try_get("actor_key_id")?,
        action: row.try_get("action")?,
        target_type: row.try_get("target_type")?,
        target_id: row.try_get("target_id")?,
        client_ip: row.try_get("client_ip")?,
        request_id: row.try_get("request_id")?,
        details: serde_json::from_str(&details).map_err(|e| StoreError::Corrupt(e.to_string()))?,
    })
}

impl Store {
    /// Appends events that are not part of a change (failed authentications), in one
    /// transaction.
    pub async fn append_standalone_events(&self, events: &[StandaloneEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for event in events {
            append(&mut tx, &self.audit_key, event.team_id.as_ref(), &event.context, &event.change).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A team's events, newest first.
    pub async fn list_audit_events(
        &self,
        team_id: &TeamId,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> Result<Page<AuditEvent>, StoreError> {
        let mut sql = format!("select {EVENT_COLUMNS} from audit_events where stream = $1");
        let mut binds: Vec<String> = vec![team_stream(team_id).to_owned()];
        let mut push = |clause: &str, value: String| {
            binds.push(value);
            sql.push_str(&format!(" and {clause} = ${}", binds.len()));
        };
        if let Some(actor_id) = &filter.actor_id {
            push("actor_id", actor_id.clone());
        }
        if let Some(action) = filter.action {
            push("action", action.as_str().to_owned());
        }
        if let Some(target_id) = &filter.target_id {
            push("target_id", target_id.clone());
        }
        let before_seq: Option<i64> = match &page.after {
            Some(cursor) => Some(
                decode_cursor(cursor).and_then(|text| text.parse().ok()).ok_or(StoreError::InvalidCursor)?,
            ),
            None => None,
        };
        let mut query_sql = sql;
        if before_seq.is_some() {
            query_sql.push_str(&format!(" and seq < ${}", binds.len() + 1));
        }
        query_sql.push_str(&format!(" order by seq desc limit {}", u64::from(page.limit) + 1));
        let mut query = sqlx::query(&query_sql);
        for value in &binds {
            query = query.bind(value.as_str());
        }
        if let Some(seq) = before_seq {
            query = query.bind(seq);
        }
        let rows = query.fetch_all(&self.pool).await?;
        let mut items = rows.iter().map(event_from_row).collect::<Result<Vec<_>, _>>()?;
        let next_cursor = if items.len() > page.limit as usize {
            items.truncate(page.limit as usize);
            items.last().map(|event| encode_cursor(&event.seq.to_string()))
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    /// Recomputes a team's chain from the first event to the stored head.
    pub async fn verify_audit_chain(&self, team_id: &TeamId) -> Result<ChainReport, StoreError> {
        self.verify_stream(team_stream(team_id)).await
    }

    pub async fn verify_system_audit_chain(&self) -> Result<ChainReport, StoreError> {
        self.verify_stream(SYSTEM_STREAM).await
    }

    async fn verify_stream(&self, stream: &str) -> Result<ChainReport, StoreError> {
        const BATCH: i64 = 1000;
        let head = sqlx::query("select seq, head_hash from audit_chains where stream = $1")
            .bind(stream)
            .fetch_optional(&self.pool)
            .await?;
        let (head_seq, head_hash) = match head {
            Some(row) => (row.try_get::<i64, _>("seq")?, hash_from(row.try_get("head_hash")?)?),
            None => (0, GENESIS_HASH),
        };
        let mut expected_seq = 1;
        let mut prev_hash = GENESIS_HASH;
        let report = |checked: i64, seq: i64, event_id: Option<String>, kind| ChainReport {
            events_checked: checked,
            problem: Some(ChainProblem { seq, event_id, kind }),
        };
        loop {
            let rows = sqlx::query(
                "select id, stream, seq, team_id, occurred_at, actor_type, actor_id, actor_key_id, \
                 action, target_type, target_id, client_ip, request_id, details, prev_hash, hash \
                 from audit_events where stream = $1 and seq >= $2 order by seq limit $3",
            )
            .bind(stream)
            .bind(expected_seq)
            .bind(BATCH)
            .fetch_all(&self.pool)
            .await?;
            let n_rows = rows.len();
            for row in rows {
                let checked = expected_seq - 1;
                let id: String = row.try_get("id")?;
                let seq: i64 = row.try_get("seq")?;
                if seq != expected_seq {
                    return Ok(report(checked, expected_seq, None, ChainProblemKind::MissingEvent));
                }
                let stored_prev = hash_from(row.try_get("prev_hash")?)?;
                let stored_hash = hash_from(row.try_get("hash")?)?;
                let details: String = row.try_get("details")?;
                let team_id: Option<String> = row.try_get("team_id")?;
                let actor_id: Option<String> = row.try_get("actor_id")?;
                let actor_key_id: Option<String> = row.try_get("actor_key_id")?;
                let target_type: Option<String> = row.try_get("target_type")?;
                let target_id: Option<String> = row.try_get("target_id")?;
                let client_ip: Option<String> = row.try_get("client_ip")?;
                let request_id: Option<String> = row.try_get("request_id")?;
                let actor_type: String = row.try_get("actor_type")?;
                let action: String = row.try_get("action")?;
                let stream_col: String = row.try_get("stream")?;
                let fields = ChainedFields {
                    id: &id,
                    stream: &stream_col,
                    seq,
                    team_id: team_id.as_deref(),
                    occurred_at: row.try_get("occurred_at")?,
                    actor_type: &actor_type,
                    actor_id: actor_id.as_deref(),
                    actor_key_id: actor_key_id.as_deref(),
                    action: &action,
                    target_type: target_type.as_deref(),
                    target_id: target_id.as_deref(),
                    client_ip: client_ip.as_deref(),
                    request_id: request_id.as_deref(),
                    details: &details,
                };
                if stored_prev != prev_hash {
                    return Ok(report(checked, seq, Some(id), ChainProblemKind::BrokenLink));
                }
                if chain_hash(&self.audit_key, &stored_prev, &fields) != stored_hash {
                    return Ok(report(checked, seq, Some(id), ChainProblemKind::HashMismatch));
                }
                prev_hash = stored_hash;
                expected_seq += 1;
            }
            if (n_rows as i64) < BATCH {
                break;
            }
        }
        let checked = expected_seq - 1;
        if head_seq != checked || head_hash != prev_hash {
            let kind = if head_seq > checked {
                ChainProblemKind::TruncatedTail
            } else {
                ChainProblemKind::BrokenLink
            };
            return Ok(report(checked, checked + 1, None, kind));
        }
        Ok(ChainReport { events_checked: checked, problem: None })
    }
}
