//! Webhook delivery: makes the bar's events into messages in the store's outbox, then
//! sends them, signed, one at a time per webhook, retrying on the schedule.
//!
//! Durable and at-least-once: a message is stored before it is sent, and the cursor that
//! says which events are messages moves in the same step, so an event found after a
//! restart is made into the message it was owed. Sent once across servers: the store
//! leases a webhook to one server while it sends.
//!
//! A server's own alerts (its store cannot write, its disk is nearly full) are sent from
//! memory: the store may be what is failing. They are not retried after a restart.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::alert::{Alert, AlertEvent, AlertFilter, AlertState, Change};
use crate::bar::Notice;
use crate::feed::Feed;
use crate::keg::KegOp;
use crate::pour::Timestamp;
use crate::store::{Outbox, Store, StoreError};
use crate::venue::Venues;
use crate::webhook::{
    self, Answer, Attempt, EventType, Hook, Letter, Message, MessageState, Next, Schedule,
};

/// How often the outbox is looked at when nothing wakes it.
const TICK: Duration = Duration::from_millis(250);

/// Messages sent at once (each to a different webhook).
const SENDERS: usize = 4;

/// A lease outlives an attempt by this much: long enough to record it.
const LEASE_SLACK: Duration = Duration::from_secs(10);

/// The most of an answer read: the status is what counts.
const MAX_ANSWER: usize = 64 * 1024;

/// Events made into messages in one step.
const EVENTS_PER_STEP: usize = 500;

/// A server's own alerts' messages kept in memory while they wait.
const MAX_OWN: usize = 100;

/// Sends the webhooks' messages.
#[derive(Clone)]
pub struct Courier {
    inner: Arc<Inner>,
}

struct Inner {
    /// Where a disabled webhook's alert is logged.
    store: Arc<dyn Store>,
    outbox: Arc<dyn Outbox>,
    feed: Feed,
    schedule: Schedule,
    client: reqwest::Client,
    /// This server, for leases.
    owner: String,
    woken: tokio::sync::Notify,
    /// The webhooks as last read: a server's own alerts go to them when the store fails.
    hooks: std::sync::Mutex<Vec<Hook>>,
    /// A server's own alerts' messages: (webhook, message).
    own: std::sync::Mutex<Vec<(u64, Message)>>,
    /// The server's own alerts as last seen: (id, state).
    own_seen: std::sync::Mutex<Vec<(u64, AlertState)>>,
}

/// Why the courier cannot start.
#[derive(Debug, thiserror::Error)]
#[error("webhook client: {0}")]
pub struct CourierError(String);

impl Courier {
    pub fn new(
        store: Arc<dyn Store>,
        feed: Feed,
        schedule: Schedule,
    ) -> Result<Courier, CourierError> {
        let timeout = Duration::from_millis(schedule.timeout_ms);
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("Altair-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CourierError(e.to_string()))?;
        let mut random = [0u8; 4];
        let _ = getrandom::fill(&mut random);
        let owner = format!(
            "{}-{}-{:08x}",
            crate::feed::host_name(),
            std::process::id(),
            u32::from_le_bytes(random)
        );
        Ok(Courier {
            inner: Arc::new(Inner {
                outbox: store.outbox(),
                store,
                feed,
                schedule,
                client,
                owner,
                woken: tokio::sync::Notify::new(),
                hooks: std::sync::Mutex::new(Vec::new()),
                own: std::sync::Mutex::new(Vec::new()),
                own_seen: std::sync::Mutex::new(Vec::new()),
            }),
        })
    }

    /// The store's outbox.
    pub fn outbox(&self) -> &Arc<dyn Outbox> {
        &self.inner.outbox
    }

    /// The bar's last event so far: where a new webhook's messages start.
    pub fn last_seq(&self) -> u64 {
        self.inner.feed.bar().hold().last_seq()
    }

    /// Something new to send: look now rather than at the next tick.
    pub fn wake(&self) {
        self.inner.woken.notify_waiters();
    }

    /// Makes messages and sends them until `stop`.
    pub async fn run(self, stop: tokio_util::sync::CancellationToken) {
        let mut tasks = tokio::task::JoinSet::new();
        let maker = self.clone();
        let stopped = stop.clone();
        tasks.spawn(async move {
            while !stopped.is_cancelled() {
                maker.make_messages().await;
                maker.own_alerts();
                tokio::select! {
                    () = tokio::time::sleep(TICK) => {}
                    () = stopped.cancelled() => {}
                }
            }
        });
        for _ in 0..SENDERS {
            let sender = self.clone();
            let stopped = stop.clone();
            tasks.spawn(async move {
                while !stopped.is_cancelled() {
                    let sent = sender.send_one().await;
                    if !sent {
                        let woken = sender.inner.woken.notified();
                        tokio::select! {
                            () = tokio::time::sleep(TICK) => {}
                            () = woken => {}
                            () = stopped.cancelled() => {}
                        }
                    }
                }
            });
        }
        let own = self.clone();
        let stopped = stop.clone();
        tasks.spawn(async move {
            while !stopped.is_cancelled() {
                own.send_own().await;
                tokio::select! {
                    () = tokio::time::sleep(TICK) => {}
                    () = stopped.cancelled() => {}
                }
            }
        });
        // An attempt under way is cut short: it was not recorded, so it is sent again.
        stop.cancelled().await;
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }

    /// Makes the events since each webhook's cursor into its messages.
    async fn make_messages(&self) {
        let inner = &self.inner;
        let hooks = match inner.outbox.hooks().await {
            Ok(hooks) => hooks,
            Err(e) => {
                log::debug!("webhooks: cannot read them: {e}");
                return;
            }
        };
        inner
            .hooks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone_from(&hooks);
        let mut made = false;
        let venues = inner.feed.bar().venues(|v| v.clone());
        for hook in hooks {
            let (owed, last) = inner.feed.bar().hold().owed(0, Some(hook.cursor));
            if last <= hook.cursor {
                continue;
            }
            let owed: Vec<Notice> = owed.into_iter().take(EVENTS_PER_STEP).collect();
            let through = owed.last().map_or(last, Notice::seq);
            let letters: Vec<Letter> = owed
                .iter()
                .filter_map(|notice| letter_of(&hook, notice, &venues))
                .collect();
            made |= !letters.is_empty();
            if let Err(e) = inner
                .outbox
                .enqueue(hook.id, letters, through, Timestamp::now())
                .await
            {
                log::warn!("webhook {}: cannot store its messages: {e}", hook.id);
            }
        }
        if made {
            self.wake();
        }
    }

    /// Sends one due message if there is one; whether there was.
    async fn send_one(&self) -> bool {
        let inner = &self.inner;
        let lease = Duration::from_millis(inner.schedule.timeout_ms) + LEASE_SLACK;
        let claimed = match inner
            .outbox
            .claim(&inner.owner, lease, Timestamp::now())
            .await
        {
            Ok(claimed) => claimed,
            Err(e) => {
                log::debug!("webhooks: cannot claim a message: {e}");
                return false;
            }
        };
        let Some((hook, message)) = claimed else {
            return false;
        };
        let (attempt, next) = self.attempt(&hook, &message).await;
        if let Err(e) = inner
            .outbox
            .settle(&inner.owner, hook.id, attempt, &next, Timestamp::now())
            .await
        {
            // Sent but not recorded: it goes again when the lease runs out.
            log::warn!("webhook {}: cannot record an attempt: {e}", hook.id);
        } else if let Next::Disable(reason) = next {
            self.webhook_down(hook.id, reason).await;
        }
        true
    }

    /// Logs that the server disabled webhook `id`: an alert of its own opens.
    async fn webhook_down(&self, id: u64, reason: String) {
        let op = KegOp::WebhookDown {
            webhook_id: id,
            reason,
            at: Timestamp::now(),
        };
        match self.inner.store.keg(op, None).await {
            Ok(_) => {}
            Err(e) => log::warn!("webhook {id}: cannot log that it is disabled: {e}"),
        }
    }

    /// Logs that webhook `id` is enabled again or deleted: its alert, if one is open,
    /// resolves.
    pub async fn webhook_up(&self, id: u64) {
        let op = KegOp::WebhookUp {
            webhook_id: id,
            at: Timestamp::now(),
        };
        if let Err(e) = self.inner.store.keg(op, None).await {
            log::warn!("webhook {id}: cannot log that it is back: {e}");
        }
    }

    /// One attempt at `message`: what it met and what follows.
    async fn attempt(&self, hook: &Hook, message: &Message) -> (Attempt, Next) {
        let started = Instant::now();
        let at = Timestamp::now();
        let answer = self.post(hook, &message.letter).await;
        let number = message.attempts + 1;
        let mut jitter = [0u8; 1];
        let _ = getrandom::fill(&mut jitter);
        let next = self.inner.schedule.next(
            &answer,
            number,
            hook.failing_since,
            at,
            f64::from(jitter[0]) / 255.0,
        );
        let (status, error) = match &answer {
            Answer::Status { status, .. } if (200..300).contains(status) => (Some(*status), None),
            Answer::Status { status, .. } => (
                Some(*status),
                Some(format!("the receiver answered {status}")),
            ),
            Answer::Error(e) => (None, Some(e.clone())),
        };
        crate::metrics::webhook_attempt(match &next {
            Next::Delivered => "delivered",
            Next::Retry(_) => "retrying",
            Next::Failed => "failed",
            Next::Disable(_) => "disabled",
        });
        let (state, next_at) = match &next {
            Next::Delivered => (MessageState::Delivered, None),
            Next::Retry(ms) => (
                MessageState::Pending,
                Some(Timestamp::from_millis(at.millis() + *ms as i64)),
            ),
            Next::Failed | Next::Disable(_) => (MessageState::Failed, None),
        };
        match (&next, &error) {
            (Next::Delivered, _) | (_, None) => {}
            (Next::Retry(ms), Some(e)) => log::info!(
                "webhook {}: {} attempt {number} failed ({e}); again in {}",
                hook.id,
                message.letter.id,
                crate::human::duration(Duration::from_millis(*ms))
            ),
            (Next::Failed, Some(e)) => log::warn!(
                "webhook {}: {} failed after {number} attempts ({e})",
                hook.id,
                message.letter.id
            ),
            (Next::Disable(reason), Some(_)) => {
                log::warn!("webhook {} disabled: {reason}", hook.id)
            }
        }
        let attempt = Attempt {
            message_id: message.letter.id.clone(),
            event: message.letter.event,
            attempt: number,
            at,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            status,
            error,
            state,
            next_at,
        };
        (attempt, next)
    }

    /// Posts `letter` to `hook`, signed.
    async fn post(&self, hook: &Hook, letter: &Letter) -> Answer {
        let body = letter.body(hook.format);
        let timestamp = Timestamp::now().millis() / 1000;
        let signature = hook.secret.sign(&letter.id, timestamp, &body.bytes);
        let mut request = self
            .inner
            .client
            .post(&hook.url)
            .header("content-type", body.content_type)
            .header("webhook-id", &letter.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature);
        for (name, value) in &body.headers {
            request = request.header(*name, value);
        }
        let response = match request.body(body.bytes).send().await {
            Ok(response) => response,
            Err(e) => return Answer::Error(describe(&e, self.inner.schedule.timeout_ms)),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        // Read a little of the answer (a receiver may send megabytes), then hang up.
        let mut response = response;
        let mut read = 0usize;
        while read < MAX_ANSWER {
            match response.chunk().await {
                Ok(Some(chunk)) => read += chunk.len(),
                _ => break,
            }
        }
        Answer::Status {
            status,
            retry_after,
        }
    }

    /// Notes the server's own alerts' changes since the last look, as messages in memory.
    fn own_alerts(&self) {
        let inner = &self.inner;
        let alerts: Vec<Alert> = inner
            .feed
            .server_alerts(|own| own.list(&AlertFilter::default()).cloned().collect());
        let mut seen = inner
            .own_seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let hooks = inner
            .hooks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let mut own = inner
            .own
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for alert in &alerts {
            let before = seen.iter().find(|(id, _)| *id == alert.id).map(|s| s.1);
            if before == Some(alert.state) {
                continue;
            }
            let change = match alert.state {
                AlertState::Open => Change::Opened,
                AlertState::Acknowledged => Change::Acknowledged,
                AlertState::Resolved => Change::Resolved,
            };
            let event = AlertEvent {
                change,
                seq: 0,
                after: 0,
                alert: alert.clone(),
            };
            let Some((kind, data, words)) = webhook::alert_letter(&event) else {
                continue;
            };
            for hook in hooks.iter().filter(|h| h.wants(kind) && h.follows(None)) {
                if own.len() >= MAX_OWN {
                    break;
                }
                let letter = Letter {
                    id: format!(
                        "msg_{}_own_{}_{}_{}",
                        hook.uid,
                        alert.id,
                        kind.name(),
                        alert.opened_at.millis()
                    ),
                    webhook_id: hook.id,
                    seq: 0,
                    event: kind,
                    created_at: Timestamp::now(),
                    data: data.clone(),
                    title: words.title.clone(),
                    text: words.text.clone(),
                    severity: words.severity,
                };
                own.push((
                    hook.id,
                    Message {
                        next_at: letter.created_at,
                        letter,
                        state: MessageState::Pending,
                        attempts: 0,
                    },
                ));
            }
        }
        *seen = alerts.iter().map(|a| (a.id, a.state)).collect();
    }

    /// Sends the server's own alerts' messages that are due, from memory.
    async fn send_own(&self) {
        let now = Timestamp::now();
        let due: Vec<(u64, Message)> = {
            let own = self
                .inner
                .own
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            own.iter()
                .filter(|(_, m)| m.next_at <= now)
                .cloned()
                .collect()
        };
        for (hook_id, message) in due {
            let hook = self
                .inner
                .hooks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .iter()
                .find(|h| h.id == hook_id)
                .cloned();
            let Some(hook) = hook else { continue };
            let (_, next) = self.attempt(&hook, &message).await;
            {
                let mut own = self
                    .inner
                    .own
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let at = own
                    .iter()
                    .position(|(h, m)| *h == hook_id && m.letter.id == message.letter.id);
                if let Some(at) = at {
                    match &next {
                        Next::Retry(ms) => {
                            own[at].1.attempts += 1;
                            own[at].1.next_at = Timestamp::from_millis(now.millis() + *ms as i64);
                        }
                        _ => {
                            own.remove(at);
                        }
                    }
                }
            }
            if let Next::Disable(reason) = next {
                let change = crate::webhook::HookChange {
                    enabled: Some(false),
                    disabled_reason: Some(reason.clone()),
                    ..Default::default()
                };
                if self.inner.outbox.change(hook_id, change, now).await.is_ok() {
                    self.webhook_down(hook_id, reason).await;
                }
            }
        }
    }
}

/// The letter a webhook is owed for `notice`, if it wants one. Of a venue other than the
/// default one, its title names the venue: a chain's phone hears from several bars.
fn letter_of(hook: &Hook, notice: &Notice, venues: &Venues) -> Option<Letter> {
    let (event, data, mut words) = match notice {
        Notice::Alert(event) => webhook::alert_letter(event)?,
        Notice::Keg(event) => webhook::keg_letter(event)?,
    };
    let venue = match notice {
        Notice::Alert(event) => event.alert.venue.as_deref(),
        Notice::Keg(event) => Some(&*event.venue),
    };
    if !hook.wants(event) || !hook.follows(venue) {
        return None;
    }
    if let Some(venue) = venue.filter(|v| *v != &**venues.default_id())
        && let Some(view) = venues.get(venue)
    {
        words.title = format!("{}: {}", view.name, words.title);
    }
    let at = match notice {
        Notice::Alert(e) => match e.change {
            Change::Opened => e.alert.opened_at,
            Change::Acknowledged => e.alert.acknowledged_at.unwrap_or(e.alert.last_seen_at),
            _ => e.alert.resolved_at.unwrap_or(e.alert.last_seen_at),
        },
        Notice::Keg(e) => e.keg.finished_at.unwrap_or(e.keg.tapped_at),
    };
    Some(Letter {
        id: webhook::message_id(&hook.uid, notice.seq()),
        webhook_id: hook.id,
        seq: notice.seq(),
        event,
        created_at: at,
        data,
        title: words.title,
        text: words.text,
        severity: words.severity,
    })
}

/// A ping for `hook`: `POST /api/webhooks/{id}/test`.
pub fn ping(hook: &Hook) -> Result<Letter, StoreError> {
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).map_err(|e| StoreError(format!("no randomness: {e}")))?;
    let now = Timestamp::now();
    Ok(Letter {
        id: format!("msg_{}_ping_{:016x}", hook.uid, u64::from_le_bytes(random)),
        webhook_id: hook.id,
        seq: 0,
        event: EventType::Ping,
        created_at: now,
        data: serde_json::json!({ "webhookId": hook.id }),
        title: "Altair test".into(),
        text: format!("A test message to webhook {} from Altair", hook.id),
        severity: crate::alert::Severity::Info,
    })
}

/// Why a request got no answer, without its URL (which may hold a token).
fn describe(error: &reqwest::Error, timeout_ms: u64) -> String {
    if error.is_timeout() {
        return format!(
            "no answer within {}",
            crate::human::duration(Duration::from_millis(timeout_ms))
        );
    }
    let mut cause: &dyn std::error::Error = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    let what = if error.is_connect() {
        "cannot connect"
    } else {
        "the request failed"
    };
    let mut text = format!("{what}: {cause}");
    text.truncate(200);
    text
}
