//! The webhooks' outbox in PostgreSQL, shared by every server on the database: a webhook's
//! row is locked while its cursor moves (so two servers never make one message twice), and
//! leased while a message is sent (so exactly one server sends it; a server that dies
//! mid-send leaves it to another when the lease runs out).

use async_trait::async_trait;
use deadpool_postgres::Pool;

use crate::pour::Timestamp;
use crate::store::StoreError;
use crate::store::outbox::{ATTEMPTS_KEPT, Outbox, admit, settle_hook, settle_message};
use crate::webhook::{Attempt, Hook, HookChange, Letter, Message, NewHook, Next};

/// The outbox kept in the database the store uses.
pub struct PgOutbox {
    pool: Pool,
}

impl PgOutbox {
    pub(super) fn new(pool: Pool) -> PgOutbox {
        PgOutbox { pool }
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        super::pooled(&self.pool).await
    }
}

use super::failed;

fn parse<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError(format!("webhooks: unreadable row: {e}")))
}

fn text<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError(format!("webhooks: {e}")))
}

fn db(id: u64) -> i64 {
    i64::try_from(id).unwrap_or(i64::MAX)
}

/// Reads the webhook `id` locked for this transaction and writes back what `change` makes
/// of it; `None` if there is none.
async fn rewrite<T>(
    tx: &tokio_postgres::Transaction<'_>,
    id: u64,
    change: impl FnOnce(&mut Hook) -> T,
) -> Result<Option<(Hook, T)>, StoreError> {
    let Some(row) = tx
        .query_opt(
            "SELECT hook FROM altair_webhooks WHERE id = $1 FOR UPDATE",
            &[&db(id)],
        )
        .await
        .map_err(failed)?
    else {
        return Ok(None);
    };
    let mut hook: Hook = parse(row.get(0))?;
    let value = change(&mut hook);
    tx.execute(
        "UPDATE altair_webhooks SET hook = $2, enabled = $3 WHERE id = $1",
        &[&db(id), &text(&hook)?, &hook.enabled],
    )
    .await
    .map_err(failed)?;
    Ok(Some((hook, value)))
}

#[async_trait]
impl Outbox for PgOutbox {
    async fn create(&self, new: NewHook, now: Timestamp) -> Result<Hook, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(failed)?;
        let id: i64 = tx
            .query_one(
                "INSERT INTO altair_webhooks (hook, enabled) VALUES ('', true) RETURNING id",
                &[],
            )
            .await
            .map_err(failed)?
            .get(0);
        let hook = new.into_hook(u64::try_from(id).unwrap_or(0), now);
        tx.execute(
            "UPDATE altair_webhooks SET hook = $2 WHERE id = $1",
            &[&id, &text(&hook)?],
        )
        .await
        .map_err(failed)?;
        tx.commit().await.map_err(failed)?;
        Ok(hook)
    }

    async fn hooks(&self) -> Result<Vec<Hook>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT hook FROM altair_webhooks ORDER BY id", &[])
            .await
            .map_err(failed)?;
        rows.iter().map(|row| parse(row.get(0))).collect()
    }

    async fn hook(&self, id: u64) -> Result<Option<Hook>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt("SELECT hook FROM altair_webhooks WHERE id = $1", &[&db(id)])
            .await
            .map_err(failed)?;
        row.map(|row| parse(row.get(0))).transpose()
    }

    async fn change(
        &self,
        id: u64,
        change: HookChange,
        now: Timestamp,
    ) -> Result<Option<Hook>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(failed)?;
        let changed = rewrite(&tx, id, |hook| change.apply(hook, now)).await?;
        tx.commit().await.map_err(failed)?;
        Ok(changed.map(|(hook, ())| hook))
    }

    async fn remove(&self, id: u64) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let removed = client
            .execute("DELETE FROM altair_webhooks WHERE id = $1", &[&db(id)])
            .await
            .map_err(failed)?;
        Ok(removed > 0)
    }

    async fn enqueue(
        &self,
        hook: u64,
        letters: Vec<Letter>,
        through: u64,
        _now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(failed)?;
        // The row lock makes the cursor's move and the messages one step on every server.
        let Some(row) = tx
            .query_opt(
                "SELECT hook, (SELECT count(*) FROM altair_webhook_messages WHERE webhook_id = $1)
                 FROM altair_webhooks WHERE id = $1 FOR UPDATE",
                &[&db(hook)],
            )
            .await
            .map_err(failed)?
        else {
            return Ok(true);
        };
        let mut kept: Hook = parse(row.get(0))?;
        let pending = usize::try_from(row.get::<_, i64>(1)).unwrap_or(0);
        let (admitted, cursor, all) = admit(letters, kept.cursor, pending, through);
        for message in admitted {
            tx.execute(
                "INSERT INTO altair_webhook_messages (id, webhook_id, seq, created_ms, next_at_ms, message)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
                &[
                    &message.letter.id,
                    &db(hook),
                    &db(message.letter.seq),
                    &message.letter.created_at.millis(),
                    &message.next_at.millis(),
                    &text(&message)?,
                ],
            )
            .await
            .map_err(failed)?;
        }
        if cursor > kept.cursor {
            kept.cursor = cursor;
            tx.execute(
                "UPDATE altair_webhooks SET hook = $2 WHERE id = $1",
                &[&db(hook), &text(&kept)?],
            )
            .await
            .map_err(failed)?;
        }
        tx.commit().await.map_err(failed)?;
        Ok(all)
    }

    async fn claim(
        &self,
        owner: &str,
        lease: std::time::Duration,
        now: Timestamp,
    ) -> Result<Option<(Hook, Message)>, StoreError> {
        let client = self.client().await?;
        let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
        // The database's clock judges leases: the servers' clocks may differ.
        let Some(row) = client
            .query_opt(
                "UPDATE altair_webhooks w
                 SET lease_owner = $1, lease_until = now() + make_interval(secs => $2::float8)
                 WHERE w.id = (
                     SELECT h.id FROM altair_webhooks h
                     WHERE h.enabled AND (h.lease_until IS NULL OR h.lease_until < now())
                       AND EXISTS (SELECT 1 FROM altair_webhook_messages m
                                   WHERE m.webhook_id = h.id AND m.next_at_ms <= $3)
                     ORDER BY h.id LIMIT 1
                     FOR UPDATE SKIP LOCKED)
                 RETURNING w.id, w.hook",
                &[&owner, &(lease_ms as f64 / 1000.0), &now.millis()],
            )
            .await
            .map_err(failed)?
        else {
            return Ok(None);
        };
        let id: i64 = row.get(0);
        let hook: Hook = parse(row.get(1))?;
        let message = client
            .query_opt(
                "SELECT message FROM altair_webhook_messages
                 WHERE webhook_id = $1 AND next_at_ms <= $2 ORDER BY created_ms, seq, id LIMIT 1",
                &[&id, &now.millis()],
            )
            .await
            .map_err(failed)?;
        match message {
            Some(row) => Ok(Some((hook, parse(row.get(0))?))),
            None => {
                client
                    .execute(
                        "UPDATE altair_webhooks SET lease_owner = NULL, lease_until = NULL
                         WHERE id = $1 AND lease_owner = $2",
                        &[&id, &owner],
                    )
                    .await
                    .map_err(failed)?;
                Ok(None)
            }
        }
    }

    async fn settle(
        &self,
        owner: &str,
        hook: u64,
        attempt: Attempt,
        next: &Next,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(failed)?;
        if rewrite(&tx, hook, |kept| settle_hook(kept, next, now))
            .await?
            .is_none()
        {
            // Deleted meanwhile: nothing to record.
            return Ok(());
        }
        let row = tx
            .query_opt(
                "SELECT message FROM altair_webhook_messages WHERE id = $1",
                &[&attempt.message_id],
            )
            .await
            .map_err(failed)?;
        if let Some(row) = row {
            let mut message: Message = parse(row.get(0))?;
            if settle_message(&mut message, next, now).is_some() {
                tx.execute(
                    "UPDATE altair_webhook_messages SET next_at_ms = $2, message = $3 WHERE id = $1",
                    &[&attempt.message_id, &message.next_at.millis(), &text(&message)?],
                )
                .await
                .map_err(failed)?;
            } else {
                tx.execute(
                    "DELETE FROM altair_webhook_messages WHERE id = $1",
                    &[&attempt.message_id],
                )
                .await
                .map_err(failed)?;
            }
        }
        tx.execute(
            "INSERT INTO altair_webhook_attempts (webhook_id, attempt) VALUES ($1, $2)",
            &[&db(hook), &text(&attempt)?],
        )
        .await
        .map_err(failed)?;
        tx.execute(
            "DELETE FROM altair_webhook_attempts WHERE webhook_id = $1 AND n <= (
                 SELECT n FROM altair_webhook_attempts WHERE webhook_id = $1
                 ORDER BY n DESC OFFSET $2 LIMIT 1)",
            &[&db(hook), &(ATTEMPTS_KEPT as i64)],
        )
        .await
        .map_err(failed)?;
        tx.execute(
            "UPDATE altair_webhooks SET lease_owner = NULL, lease_until = NULL
             WHERE id = $1 AND lease_owner = $2",
            &[&db(hook), &owner],
        )
        .await
        .map_err(failed)?;
        tx.commit().await.map_err(failed)
    }

    async fn deliveries(
        &self,
        hook: u64,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<Attempt>, u64), StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT attempt, count(*) OVER () FROM altair_webhook_attempts WHERE webhook_id = $1
                 ORDER BY n DESC OFFSET $2 LIMIT $3",
                &[&db(hook), &(offset as i64), &(limit as i64)],
            )
            .await
            .map_err(failed)?;
        let total = match rows.first() {
            Some(row) => u64::try_from(row.get::<_, i64>(1)).unwrap_or(0),
            None => client
                .query_one(
                    "SELECT count(*) FROM altair_webhook_attempts WHERE webhook_id = $1",
                    &[&db(hook)],
                )
                .await
                .map_err(failed)
                .map(|row| u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))?,
        };
        let attempts = rows
            .iter()
            .map(|row| parse(row.get(0)))
            .collect::<Result<_, _>>()?;
        Ok((attempts, total))
    }

    async fn pending(&self, hook: u64) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT count(*) FROM altair_webhook_messages WHERE webhook_id = $1",
                &[&db(hook)],
            )
            .await
            .map_err(failed)?;
        Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
    }
}
