//! Event webhooks (SPEC §5.13): the store queues one `webhook_outbox` row per event and
//! receiver in the transaction of the audit row it tells of; a background sender on
//! every node claims rows with a lease and posts them, signed per Standard Webhooks,
//! with a `webhook-id` that is the row's (the same on every attempt), in order per
//! user: a user's event waits while an earlier one of theirs to that receiver does.
//! At least once: a receiver may see an event again (after a crash between its answer
//! and our record of it) and deduplicates by `webhook-id`.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::Duration as ChronoDuration;
use serde_json::{json, Value};
use tessera_domain::Error;
use tessera_store::entity::webhook_outbox;
use tessera_store::query::{audit, webhooks};
use uuid::Uuid;

use crate::app::Core;
use crate::caller::now;
use crate::mail::outbox::backoff;

/// How long a claim lasts: a sender that dies holds its row this long at most.
const LEASE: i64 = 30;
/// Attempts before an event is given up on: with the backoff capped at
/// `MAIL_RETRY_MAX_DELAY` (5 minutes by default), about three hours of trying.
const MAX_ATTEMPTS: i32 = 40;
/// How long one delivery may take.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Rows read per pass.
const SCAN: u64 = 256;

/// The body of an event: Standard Webhooks' `{type, timestamp, data}`.
fn payload(row: &webhook_outbox::Model, audit: Option<&tessera_store::entity::audit_log::Model>) -> Value {
    json!({
        "type": row.event,
        "timestamp": row.created_at,
        "data": {
            "event_id": row.audit_id,
            "user_id": row.user_id,
            "actor_id": audit.and_then(|a| a.actor_id),
            "audit_event": audit.map(|a| a.event.as_str()),
            "detail": audit.map(|a| a.detail.clone()).unwrap_or_else(|| json!({})),
        },
    })
}

impl Core {
    /// Delivers the events that are due, in order per user and receiver; returns how
    /// many were delivered.
    pub async fn deliver_due_webhooks(&self) -> Result<usize, Error> {
        let Some(settings) = self.settings.webhooks.as_ref() else { return Ok(0) };
        let now = now();
        let rows = webhooks::waiting_rows(self.store.reader(), SCAN).await?;
        // More wait than one scan reads: the oldest could all be held (a receiver down),
        // so take the due ones instead, each after a check that no earlier event of its
        // user to its receiver waits.
        let whole = (rows.len() as u64) < SCAN;
        let rows = if whole { rows } else { webhooks::due_rows(self.store.reader(), now, SCAN).await? };
        // A (user, receiver) whose earlier event waits: its later ones wait too.
        let mut blocked: HashSet<(Option<Uuid>, String)> = HashSet::new();
        let mut delivered = 0;
        for row in rows {
            let key = (row.user_id, row.url.clone());
            if blocked.contains(&key) {
                continue;
            }
            let leased = row.locked_until.is_some_and(|t| t > now);
            if row.next_attempt_at > now
                || leased
                || (!whole && webhooks::has_earlier(self.store.reader(), &row).await?)
            {
                blocked.insert(key);
                continue;
            }
            if !webhooks::claim(self.store.writer(), row.id, now, now + ChronoDuration::seconds(LEASE)).await? {
                blocked.insert(key);
                continue;
            }
            match self.deliver_webhook(&row, &settings.secrets).await {
                Ok(()) => {
                    delivered += 1;
                    metrics::counter!("tessera_webhook_deliveries_total", "outcome" => "delivered").increment(1);
                    webhooks::record_delivered(self.store.writer(), row.id, row.attempts + 1, crate::caller::now())
                        .await?;
                }
                Err(why) => {
                    blocked.insert(key);
                    let attempts = row.attempts + 1;
                    let given_up = attempts >= MAX_ATTEMPTS;
                    let outcome = if given_up { "given_up" } else { "failed" };
                    metrics::counter!("tessera_webhook_deliveries_total", "outcome" => outcome).increment(1);
                    tracing::warn!(event = %row.event, attempts, error = %why, "webhook delivery failed; will retry");
                    let done = crate::caller::now();
                    let next = done + backoff(attempts - 1, self.mailer.max_delay);
                    let why = crate::audit::truncate(&why, 1000);
                    webhooks::record_failure(
                        self.store.writer(),
                        row.id,
                        attempts,
                        next,
                        given_up.then_some(done),
                        why,
                    )
                    .await?;
                }
            }
        }
        Ok(delivered)
    }

    /// Posts one event; `Err` with why when the receiver did not take it (any answer
    /// but 2xx).
    async fn deliver_webhook(
        &self,
        row: &webhook_outbox::Model,
        secrets: &crate::hooks::signature::Secrets,
    ) -> Result<(), String> {
        let audit = audit::by_id(self.store.reader(), row.audit_id).await.map_err(|e| e.cause())?;
        let body = serde_json::to_vec(&payload(row, audit.as_ref())).map_err(|e| e.to_string())?;
        let id = crate::hooks::dispatch::message_id_of(row.id);
        let response =
            crate::hooks::dispatch::signed_post(&self.hook_http, &row.url, secrets, &id, body, DELIVERY_TIMEOUT)
                .send()
                .await
                .map_err(|e| format!("unreachable: {}", crate::hooks::dispatch::without_url(&e, "<webhook>")))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("the receiver answered {}", status.as_u16()))
        }
    }

    /// The background sender of webhooks: delivers due events at least twice a second
    /// until `stop` turns true; a delivery under way is finished first.
    pub async fn run_webhook_sender(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        if self.settings.webhooks.is_none() {
            return;
        }
        while !*stop.borrow() {
            match self.deliver_due_webhooks().await {
                // More may be due at once.
                Ok(n) if n > 0 => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e.cause(), "webhook outbox pass failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// Events waiting for delivery and events given up on.
    pub async fn webhook_counts(&self) -> Result<(u64, u64), Error> {
        let reader = self.store.reader();
        Ok((webhooks::waiting_count(reader).await?, webhooks::failed_count(reader).await?))
    }
}
