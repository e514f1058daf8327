//! MQTT: pours from a broker's topics, as devices publish them.
//!
//! One connection per server (MQTT 5, or 3.1.1 for a broker that speaks nothing newer;
//! QoS 1, a persistent session under a stable client id). A message is acknowledged
//! (PUBACK) only once its pour is durable, so a server killed mid-message loses nothing:
//! the broker delivers it again. Messages are judged and handed to the store in the order
//! they came, and acknowledged in that order. Each outcome is published back on
//! `…/pours/accepted` or `…/pours/rejected`.

mod meters;
mod out;
mod topic;
mod wire;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesOrdered;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Packet, Publish};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wire::Client;

use crate::bar::Bar;
use crate::config::{Config, MqttUrl};
use crate::decide::Inserted;
use crate::metrics;
use crate::pour::{IDEMPOTENCY_KEY_RULE, Pour, PourError, Timestamp, idempotency_key};
use crate::pouring::Pouring;
use crate::store::Store;
use crate::temperature::Reading;

pub use out::Out;
pub use topic::{SHARE_GROUP, filters};

/// Unacknowledged messages the broker may send at once (MQTT 5 Receive Maximum): what
/// the server has in hand at most, judged or waiting for the store.
const RECEIVE_MAXIMUM: u16 = 256;

/// Messages judged and waiting for the store at once, at most.
const MAX_PENDING: usize = 1024;

/// A payload larger than this never reaches the server (the broker drops it): a pour's
/// body is a few dozen bytes; HTTP takes 16 KiB.
const MAX_PACKET: u32 = 64 * 1024;

/// How the server reaches its broker, from the configuration.
#[derive(Clone)]
pub struct Settings {
    pub url: MqttUrl,
    pub password: Option<String>,
    pub prefix: String,
    pub client_id: String,
    pub session_expiry: Duration,
    /// Several servers read one store: share the subscriptions.
    pub shared: bool,
    /// Home Assistant's discovery prefix, with `--mqtt-discovery`.
    pub discovery: Option<String>,
    /// The counter devices of `--mqtt-meters`.
    pub meters: Vec<meters::Meter>,
    /// The temperature sensors of `--mqtt-meters` that publish a bare reading.
    pub mapped: Vec<meters::Thermometer>,
    /// How long an idempotency key stands (`--idempotency-ttl`).
    pub key_ttl: Duration,
    /// MQTT 5, or 3.1.1.
    pub protocol: wire::Protocol,
}

/// Why MQTT cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read --mqtt-password-file {path}: {source}")]
    Password {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("--{0} is given without --mqtt-url")]
    NoUrl(&'static str),
    #[error("--mqtt-meters {path}: {why}")]
    Meters {
        path: std::path::PathBuf,
        why: String,
    },
}

impl Settings {
    /// The settings `config` gives a server listening on `port`, or `None` without
    /// `--mqtt-url` (`shared` is for the server to say once its store is open).
    pub fn of(config: &Config, port: u16) -> Result<Option<Settings>, SettingsError> {
        let Some(url) = config.mqtt_url.clone() else {
            return match (&config.mqtt_password_file, &config.mqtt_meters) {
                (Some(_), _) => Err(SettingsError::NoUrl("mqtt-password-file")),
                (_, Some(_)) => Err(SettingsError::NoUrl("mqtt-meters")),
                (None, None) => Ok(None),
            };
        };
        let (meters, mapped) = match &config.mqtt_meters {
            None => (Vec::new(), Vec::new()),
            Some(path) => {
                let failed = |why: String| SettingsError::Meters {
                    path: path.clone(),
                    why,
                };
                let (meters, mapped) = meters::load(path, config.max_volume).map_err(failed)?;
                let ours = [Some(&config.mqtt_prefix), config.mqtt_discovery.as_ref()];
                let topics = meters
                    .iter()
                    .map(|m| &m.topic)
                    .chain(mapped.iter().map(|t| &t.topic));
                for topic in topics {
                    if ours
                        .iter()
                        .flatten()
                        .any(|p| topic == *p || topic.starts_with(&format!("{p}/")))
                    {
                        return Err(failed(format!(
                            "topic {topic:?} is under Altair's own prefix; a device publishes elsewhere"
                        )));
                    }
                }
                (meters, mapped)
            }
        };
        let password = match &config.mqtt_password_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|source| SettingsError::Password {
                        path: path.clone(),
                        source,
                    })?
                    .trim_end_matches(['\r', '\n'])
                    .to_owned(),
            ),
            None => url.password.clone(),
        };
        let client_id = config
            .mqtt_client_id
            .clone()
            .unwrap_or_else(|| format!("altair-{}-{port}", hostname()));
        Ok(Some(Settings {
            url,
            password,
            prefix: config.mqtt_prefix.clone(),
            client_id,
            session_expiry: config.mqtt_session_expiry,
            shared: false,
            discovery: config.mqtt_discovery.clone(),
            meters,
            mapped,
            key_ttl: config.idempotency_ttl,
            protocol: config.mqtt_protocol,
        }))
    }

    /// The mapped temperature sensors, by topic.
    pub fn thermometers(&self) -> Arc<std::collections::HashMap<String, meters::Thermometer>> {
        Arc::new(
            self.mapped
                .iter()
                .map(|t| (t.topic.clone(), t.clone()))
                .collect(),
        )
    }

    /// What this server publishes, and where.
    pub fn out(&self) -> Out {
        Out {
            prefix: self.prefix.clone(),
            discovery: self.discovery.clone(),
        }
    }

    fn options(&self) -> Result<wire::Options, String> {
        Ok(wire::Options {
            client_id: self.client_id.clone(),
            host: self.url.host.clone(),
            port: self.url.port,
            session_expiry: self.session_expiry,
            receive_maximum: RECEIVE_MAXIMUM,
            max_packet: MAX_PACKET,
            // A server that vanishes says so: Home Assistant marks its entities unavailable.
            will: (self.out().status_topic(), "offline"),
            credentials: self
                .url
                .user
                .clone()
                .map(|user| (user, self.password.clone().unwrap_or_default())),
            tls: if self.url.tls { Some(tls()?) } else { None },
        })
    }
}

/// TLS that trusts the system's CA store (rumqttc's default panics when it cannot read it).
fn tls() -> Result<rumqttc::TlsConfiguration, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(format!(
            "no CA certificates in the system's store for mqtts ({} errors reading it)",
            found.errors.len()
        ));
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(rumqttc::TlsConfiguration::Rustls(Arc::new(config)))
}

/// This machine's name, for a default client id that is the same at every restart.
fn hostname() -> String {
    let name = rustix::system::uname();
    let name = name.nodename().to_string_lossy();
    match name.is_empty() {
        true => "server".into(),
        false => name.into_owned(),
    }
}

/// The link to the broker as `/health` shows it; cheap to clone.
#[derive(Clone)]
pub struct Link(Arc<LinkState>);

struct LinkState {
    connected: AtomicBool,
    /// When `connected` last changed.
    since: Mutex<Instant>,
    /// Why it is not connected (the last failure).
    cause: Mutex<Option<String>>,
    received: AtomicU64,
    pours: AtomicU64,
    rejected: AtomicU64,
}

/// The MQTT link, in `/health` (public: no broker address, no client id).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = MqttHealth)]
pub struct Health {
    pub connected: bool,
    /// Seconds since it connected or went away.
    pub since_seconds: u64,
    /// Why it is not connected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Messages taken from the pour topics since the server started.
    pub messages: u64,
    /// Pours stored from them.
    pub pours: u64,
    /// Messages refused (published on `…/rejected`).
    pub rejected: u64,
}

impl Default for Link {
    fn default() -> Link {
        Link(Arc::new(LinkState {
            connected: AtomicBool::new(false),
            since: Mutex::new(Instant::now()),
            cause: Mutex::new(Some("not connected yet".into())),
            received: AtomicU64::new(0),
            pours: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
        }))
    }
}

impl Link {
    pub fn health(&self) -> Health {
        let s = &self.0;
        Health {
            connected: s.connected.load(Ordering::Relaxed),
            since_seconds: lock(&s.since).elapsed().as_secs(),
            error: lock(&s.cause).clone(),
            messages: s.received.load(Ordering::Relaxed),
            pours: s.pours.load(Ordering::Relaxed),
            rejected: s.rejected.load(Ordering::Relaxed),
        }
    }

    /// Records a change of state; whether it was one.
    fn set(&self, connected: bool, cause: Option<String>) -> bool {
        let changed = self.0.connected.swap(connected, Ordering::Relaxed) != connected;
        if changed {
            *lock(&self.0.since) = Instant::now();
            metrics::mqtt_connected(connected);
        }
        *lock(&self.0.cause) = cause;
        changed
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What the link needs to store a pour.
#[derive(Clone)]
pub struct Intake {
    pub store: Arc<dyn Store>,
    pub bar: Bar,
    /// What changes the published state.
    pub bus: crate::bus::Bus,
    pub pouring: Arc<Pouring>,
    /// Topics whose messages are a sensor's bare reading (`[[thermometer]]` of
    /// `--mqtt-meters`).
    pub thermometers: Arc<std::collections::HashMap<String, meters::Thermometer>>,
}

/// Runs the link until `shutdown`: connects (and reconnects), reads the pour topics, and
/// stores what comes. Returns once what it had in hand is stored and acknowledged.
pub async fn run(settings: Settings, intake: Intake, link: Link, shutdown: CancellationToken) {
    let options = match settings.options() {
        Ok(options) => options,
        Err(why) => {
            log::error!("mqtt: {why}; no MQTT");
            link.set(false, Some(why));
            return;
        }
    };
    metrics::mqtt_start_at_zero();
    // Room for an acknowledgement and an answer for every message in hand, and more: the
    // worker never waits on a full queue that only this task empties.
    let (client, mut events) =
        wire::connect(settings.protocol, options, 4 * RECEIVE_MAXIMUM as usize);
    let (hand, taken) = mpsc::channel(RECEIVE_MAXIMUM as usize);
    let worker = tokio::spawn(work(
        taken,
        client.clone(),
        intake.clone(),
        settings.prefix.clone(),
        link.clone(),
        shutdown.clone(),
    ));
    let out = settings.out();
    let (keep, kept) = mpsc::channel(4096);
    let (connected, generation) = tokio::sync::watch::channel(0u64);
    let publisher = tokio::spawn(out::publish(
        out.clone(),
        intake.bar.clone(),
        intake.bus.clone(),
        client.clone(),
        kept,
        generation,
        shutdown.clone(),
    ));
    let meters = meters::Meters::new(settings.meters.clone());
    let (read, readings) = mpsc::channel(1024);
    let follower = tokio::spawn(meters::follow(
        meters::Task {
            meters: meters.list.clone(),
            intake: intake.clone(),
            client: client.clone(),
            prefix: settings.prefix.clone(),
            link: link.clone(),
            key_ttl: settings.key_ttl,
        },
        readings,
        shutdown.clone(),
    ));
    let filters = filters(&settings.prefix, settings.shared);
    let mut connections = 0u64;
    let mut backoff = Backoff::default();
    let mut logged_cause: Option<String> = None;
    let mut resumed = false;
    loop {
        let event = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            event = events.poll() => event,
        };
        match event {
            Ok(Some(Packet::ConnAck(ack))) => {
                backoff = Backoff::default();
                resumed = ack.session_present;
                // Up once the subscriptions are in place: until then nothing comes.
                let share = if settings.shared {
                    format!("$share/{SHARE_GROUP}/")
                } else {
                    String::new()
                };
                let pours = filters
                    .iter()
                    .cloned()
                    .chain(
                        settings
                            .mapped
                            .iter()
                            .map(|t| format!("{share}{}", t.topic)),
                    )
                    .map(|path| wire::Filter {
                        path,
                        qos: QoS::AtLeastOnce,
                        no_local: false,
                    });
                // What the broker keeps of our own topics, read back (not what this
                // connection publishes, which the server knows).
                let kept = out.filters().into_iter().map(|path| wire::Filter {
                    path,
                    qos: QoS::AtMostOnce,
                    no_local: true,
                });
                // A meter's totals at QoS 0, every server all of them: a total says all
                // before it, so none is owed to a server that was away.
                let totals = meters.list.iter().map(|m| wire::Filter {
                    path: m.topic.clone(),
                    qos: QoS::AtMostOnce,
                    no_local: false,
                });
                if let Err(e) = client.try_subscribe(pours.chain(kept).chain(totals).collect()) {
                    log::error!("mqtt: cannot subscribe: {}", e.0);
                }
            }
            Ok(Some(Packet::SubAck(ack))) => {
                let refused: Vec<String> = ack
                    .return_codes
                    .iter()
                    .filter(|code| {
                        !matches!(
                            code,
                            rumqttc::v5::mqttbytes::v5::SubscribeReasonCode::Success(_)
                        )
                    })
                    .map(|code| format!("{code:?}"))
                    .collect();
                if refused.is_empty() {
                    logged_cause = None;
                    link.set(true, None);
                    connections += 1;
                    let _ = connected.send(connections);
                    log::info!(
                        "mqtt: connected to {} as {} (MQTT {}, {}), reading {}",
                        settings.url,
                        settings.client_id,
                        match settings.protocol {
                            wire::Protocol::V5 => "5",
                            wire::Protocol::V311 => "3.1.1",
                        },
                        if resumed {
                            "session resumed"
                        } else {
                            "new session"
                        },
                        filters.join(" and "),
                    );
                    if !meters.list.is_empty() {
                        log::info!(
                            "mqtt: following {} meter(s) of --mqtt-meters",
                            meters.list.len()
                        );
                    }
                } else {
                    let why = format!(
                        "the broker refused the subscription ({}): no pours come over MQTT",
                        refused.join(", ")
                    );
                    log::error!("mqtt: {why}");
                    link.set(false, Some(why));
                }
            }
            Ok(Some(Packet::Publish(publish)))
                if std::str::from_utf8(&publish.topic).is_ok_and(|t| out.owns(t)) =>
            {
                // Read at QoS 0: nothing to acknowledge. A full queue loses a message
                // that the next comparison makes good.
                let topic = String::from_utf8_lossy(&publish.topic).into_owned();
                let _ = keep.try_send((topic, publish.payload.to_vec()));
            }
            Ok(Some(Packet::Publish(publish)))
                if !meters.list.is_empty()
                    && std::str::from_utf8(&publish.topic)
                        .is_ok_and(|t| meters.index(t).is_some()) =>
            {
                // A full queue loses a total that the next one makes good.
                let topic = std::str::from_utf8(&publish.topic).unwrap_or_default();
                if let Some(i) = meters.index(topic) {
                    let _ = read.try_send((i, publish.payload));
                }
            }
            Ok(Some(Packet::Publish(publish))) => {
                // Waits while the worker has its hands full (the broker sends no more than
                // the Receive Maximum unacknowledged); the worker never waits on this task.
                tokio::select! {
                    sent = hand.send(publish) => if sent.is_err() { break },
                    () = shutdown.cancelled() => break,
                }
            }
            Ok(_) => {}
            Err(cause) => {
                let wait = backoff.next();
                let was_up = link.set(false, Some(cause.clone()));
                let _ = connected.send(0);
                if was_up {
                    log::warn!(
                        "mqtt: lost {}: {cause}; reconnecting (next try in {:.1} s)",
                        settings.url,
                        wait.as_secs_f64()
                    );
                } else if logged_cause.as_deref() != Some(cause.as_str()) {
                    log::warn!(
                        "mqtt: cannot reach {}: {cause}; trying again (next in {:.1} s, then up to every {} s)",
                        settings.url,
                        wait.as_secs_f64(),
                        Backoff::MAX.as_secs()
                    );
                } else {
                    log::debug!("mqtt: still cannot reach {}: {cause}", settings.url);
                }
                logged_cause = Some(cause);
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
    // Finish what is in hand: its acknowledgements go out while this task still polls.
    drop(hand);
    drop(read);
    let flush = async {
        let mut both = futures::future::join3(worker, publisher, follower);
        loop {
            tokio::select! {
                _ = &mut both => break,
                event = events.poll() => if event.is_err() { break },
            }
        }
        let _ = client.try_disconnect();
        while events.poll().await.is_ok() {}
    };
    if tokio::time::timeout(Duration::from_secs(3), flush)
        .await
        .is_err()
    {
        log::warn!(
            "mqtt: the broker did not take the last acknowledgements in 3 s; it will send those messages again"
        );
    }
    link.set(false, Some("server stopped".into()));
    log::info!("mqtt: disconnected from {}", settings.url);
}

/// Waits between connection attempts: 0.5 s, doubling to 30 s.
struct Backoff(Duration);

impl Backoff {
    const MAX: Duration = Duration::from_secs(30);

    fn next(&mut self) -> Duration {
        let now = self.0;
        self.0 = (self.0 * 2).min(Self::MAX);
        now
    }
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff(Duration::from_millis(500))
    }
}

/// What became of a message.
enum Verdict {
    Stored(Pour),
    /// A temperature reading, kept.
    Recorded(Reading),
    /// A message with a key seen before: its pour, nothing stored.
    Replayed(Pour),
    Refused {
        status: u16,
        reason: &'static str,
        message: String,
    },
}

/// Takes messages in order, hands them to the store in that order, and acknowledges and
/// answers each once the store has it, in that order.
async fn work(
    mut taken: mpsc::Receiver<Publish>,
    client: Client,
    intake: Intake,
    prefix: String,
    link: Link,
    shutdown: CancellationToken,
) {
    let mut pending = FuturesOrdered::new();
    // Acknowledgements not yet in the client's queue, in order: the queue is emptied by the
    // event loop's task, which may itself be waiting for this one to take a message, so
    // this task never waits for room in it.
    // Each with its answer, sent once the acknowledgement is queued: a device that has
    // the answer knows the broker will not send its message again.
    let mut owed: VecDeque<(Publish, Option<Answer>)> = VecDeque::new();
    let mut open = true;
    loop {
        while let Some((publish, _)) = owed.front() {
            if client.try_ack(publish).is_err() {
                break;
            }
            if let Some((_, Some((topic, body)))) = owed.pop_front() {
                // A courtesy (QoS 0): one that finds the queue full is dropped.
                let _ = client.try_publish(topic, QoS::AtMostOnce, false, body);
            }
        }
        if !open && pending.is_empty() && owed.is_empty() {
            break;
        }
        tokio::select! {
            biased;
            Some(done) = pending.next(), if !pending.is_empty() => {
                if let Some((publish, verdict)) = done {
                    let answer = finish(&link, &publish, verdict);
                    owed.push_back((publish, answer));
                }
            }
            () = tokio::time::sleep(Duration::from_millis(1)), if !owed.is_empty() => {}
            message = taken.recv(), if open && pending.len() < MAX_PENDING => match message {
                Some(publish) => {
                    link.0.received.fetch_add(1, Ordering::Relaxed);
                    metrics::mqtt_received();
                    pending.push_back(handle(intake.clone(), prefix.clone(), publish, shutdown.clone()));
                }
                None => open = false,
            },
        }
    }
}

/// Judges a message and stores its pour; `None` if the server stopped before the store
/// could take it (it stays unacknowledged, and comes again).
async fn handle(
    intake: Intake,
    prefix: String,
    publish: Publish,
    shutdown: CancellationToken,
) -> Option<(Publish, Verdict)> {
    let judged = judge(&intake, &prefix, &publish);
    let (pour, key) = match judged {
        Ok(Job::Pour(pour, key)) => (pour, key),
        Ok(Job::Reading(reading)) => {
            let thermometer = intake.store.thermometer();
            retried(&shutdown, "a temperature reading", || {
                thermometer.record(vec![reading.clone()])
            })
            .await?;
            return Some((publish, Verdict::Recorded(reading)));
        }
        Err(refused) => return Some((publish, refused)),
    };
    let inserted = retried(&shutdown, "a pour", || {
        intake.store.insert(pour.clone(), key.clone())
    })
    .await?;
    let verdict = match inserted {
        Inserted::Created(pour) => Verdict::Stored(pour),
        Inserted::Replayed(pour) => Verdict::Replayed(pour),
        Inserted::Conflict => Verdict::Refused {
            status: 409,
            reason: "conflict",
            message: format!(
                "idempotency key {:?} was already used with a different body",
                key.unwrap_or_default()
            ),
        },
        Inserted::Deleted(id) => Verdict::Refused {
            status: 409,
            reason: "conflict",
            message: format!(
                "idempotency key {:?} stored pour {id} before, which has been deleted since; nothing was stored",
                key.unwrap_or_default()
            ),
        },
    };
    Some((publish, verdict))
}

/// Does `attempt` until the store takes it, with backoff, saying so once; `None` if the
/// server stopped first (the message stays unacknowledged, and comes again).
async fn retried<T, F, Fut>(shutdown: &CancellationToken, what: &str, mut attempt: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, crate::store::StoreError>>,
{
    let mut wait = Duration::from_millis(100);
    let mut told = false;
    loop {
        match attempt().await {
            Ok(done) => return Some(done),
            Err(e) => {
                if !told {
                    log::warn!(
                        "mqtt: the store cannot take {what} now ({e}); the message stays unacknowledged and is tried again"
                    );
                    told = true;
                }
                tokio::select! {
                    () = shutdown.cancelled() => return None,
                    () = tokio::time::sleep(wait) => {}
                }
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// What a message asks for.
enum Job {
    Pour(crate::pour::NewPour, Option<String>),
    Reading(Reading),
}

/// The pour (and its idempotency key) or the reading a message describes, or why there
/// is none.
fn judge(intake: &Intake, prefix: &str, publish: &Publish) -> Result<Job, Verdict> {
    let refused = |status, reason, message: String| Verdict::Refused {
        status,
        reason,
        message,
    };
    let topic = std::str::from_utf8(&publish.topic)
        .map_err(|_| refused(400, "malformed", "the topic is not UTF-8".into()))?;
    let bad = |e: PourError| match e {
        PourError::Malformed(m) => refused(400, "malformed", m),
        PourError::Invalid(m) => refused(422, "invalid", m),
    };
    if let Some(mapped) = intake.thermometers.get(topic) {
        let venue = match &mapped.venue {
            None => intake.pouring.default_venue.clone(),
            Some(named) => intake
                .bar
                .venues(|v| v.id(named))
                .ok_or_else(|| refused(404, "forbidden", format!("no venue {named:?}")))?,
        };
        return mapped
            .reading(&publish.payload, venue, Timestamp::now())
            .map(Job::Reading)
            .map_err(bad);
    }
    let target = topic::pours(prefix, topic).map_err(|e| refused(404, "forbidden", e.0))?;
    let venue = match target.venue {
        None => intake.pouring.default_venue.clone(),
        Some(named) => intake
            .bar
            .venues(|v| v.id(named))
            .ok_or_else(|| refused(404, "forbidden", format!("no venue {named:?}")))?,
    };
    if target.kind == topic::Kind::Temperature {
        return intake
            .pouring
            .reading(
                &publish.payload,
                Some(target.tap_id),
                venue,
                Timestamp::now(),
            )
            .map(Job::Reading)
            .map_err(bad);
    }
    let pour = intake
        .pouring
        .judge(
            &publish.payload,
            Some(target.tap_id),
            venue,
            Timestamp::now(),
        )
        .map_err(bad)?;
    let key = key_of(publish).map_err(|m| refused(422, "invalid", m))?;
    Ok(Job::Pour(pour, key))
}

/// The message's idempotency key: its body's `idempotencyKey`, or its MQTT 5 user
/// property `Idempotency-Key`.
fn key_of(publish: &Publish) -> Result<Option<String>, String> {
    #[derive(serde::Deserialize)]
    struct Body {
        #[serde(rename = "idempotencyKey")]
        key: Option<serde_json::Value>,
    }
    let rule = || format!("idempotencyKey must be a string of {IDEMPOTENCY_KEY_RULE}");
    let in_body = match serde_json::from_slice::<Body>(&publish.payload)
        .ok()
        .and_then(|b| b.key)
    {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(key)) => {
            Some(idempotency_key(key.as_bytes()).ok_or_else(rule)?)
        }
        Some(_) => return Err(rule()),
    };
    let mut properties = publish
        .properties
        .iter()
        .flat_map(|p| &p.user_properties)
        .filter(|(name, _)| name.eq_ignore_ascii_case("idempotency-key"))
        .map(|(_, value)| value);
    let in_property = match (properties.next(), properties.next()) {
        (None, _) => None,
        (Some(key), None) => Some(idempotency_key(key.as_bytes()).ok_or_else(|| {
            format!("the Idempotency-Key property must be {IDEMPOTENCY_KEY_RULE}")
        })?),
        (Some(_), Some(_)) => return Err("more than one Idempotency-Key property".into()),
    };
    match (in_body, in_property) {
        (Some(a), Some(b)) if a != b => Err(format!(
            "the body's idempotencyKey {a:?} and the Idempotency-Key property {b:?} differ"
        )),
        (a, b) => Ok(a.or(b)),
    }
}

/// An answer to a message: its topic and body.
type Answer = (String, Vec<u8>);

/// Counts a handled message, and says its answer (the caller acknowledges, then answers).
fn finish(link: &Link, publish: &Publish, verdict: Verdict) -> Option<Answer> {
    let answer = match &verdict {
        Verdict::Stored(pour) => {
            link.0.pours.fetch_add(1, Ordering::Relaxed);
            metrics::mqtt_pour();
            metrics::pour_accepted(&pour.glass, &pour.venue, pour.tap_id);
            for flag in pour.flags.iter() {
                metrics::pour_flagged(flag as usize, flag.name());
            }
            (
                "accepted",
                serde_json::to_vec(&serde_json::json!({ "beer": pour })),
            )
        }
        Verdict::Recorded(reading) => (
            "accepted",
            serde_json::to_vec(&serde_json::json!({ "temperature": reading })),
        ),
        Verdict::Replayed(pour) => {
            metrics::idempotent_replay();
            (
                "accepted",
                serde_json::to_vec(&serde_json::json!({ "beer": pour })),
            )
        }
        Verdict::Refused {
            status,
            reason,
            message,
        } => {
            link.0.rejected.fetch_add(1, Ordering::Relaxed);
            metrics::mqtt_rejected(reason);
            metrics::pour_rejected(reason);
            log::debug!("mqtt: refused a message: {message}");
            (
                "rejected",
                serde_json::to_vec(&serde_json::json!({ "status": status, "message": message })),
            )
        }
    };
    let (outcome, body) = answer;
    let topic = format!("{}/{outcome}", String::from_utf8_lossy(&publish.topic));
    body.ok().map(|body| (topic, body))
}
