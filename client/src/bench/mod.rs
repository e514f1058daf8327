//! `altair-client bench`: load that measures a server, Altair or the prototype alike.
//!
//! It speaks only the prototype's routes (`POST /api/beers`, `GET /api/beers`,
//! `/sockets/beers`) and reads pour ids out of any frame that carries a `beer`. It reports
//! its own CPU use, since on a small machine the load tool can be what limits a result.
//! Every run prints a human summary and, last, one JSON line.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;

// The scenarios in child modules use `connection` and `measure`, never this module: the
// benches' layers only look down.
use crate::config::Settings;
use connection::{Connection, fetch, get_request, post_request, post_request_to};
use measure::{Latency, auth_header, cpu_time, histogram, host_port, pour_id, tool_cpu};
use subscriber::Subscriber;

mod connection;
mod history;
mod measure;
mod mqtt;
mod subscriber;
mod variance;

/// What to measure.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Scenario {
    /// C keep-alive connections posting pours as fast as they are answered.
    Ingest {
        /// Concurrent connections.
        #[arg(short = 'c', long, default_value_t = 64)]
        connections: usize,
        /// Seconds to run.
        #[arg(short = 'd', long, default_value_t = 10.0)]
        duration: f64,
        /// Another server of the same database (HOST:PORT, repeatable): the connections
        /// are spread over all of them.
        #[arg(long, value_name = "HOST:PORT")]
        also: Vec<String>,
    },
    /// S subscribers; pours posted at R per second; every delivery matched by pour id.
    Fanout {
        /// WebSocket subscribers.
        #[arg(short = 's', long, default_value_t = 1000)]
        subscribers: usize,
        /// Pours per second.
        #[arg(short = 'r', long, default_value_t = 100.0)]
        rate: f64,
        /// Seconds to post.
        #[arg(short = 'd', long, default_value_t = 10.0)]
        duration: f64,
        /// Acknowledge every read at once, as Linux does by default on a connection that
        /// only receives. Without it the subscribers delay their ACKs (TCP_QUICKACK off
        /// after each read): on loopback each ACK costs about as much as the frame it
        /// acknowledges, half of the tool's CPU, and some of the server's.
        #[arg(long)]
        quick_acks: bool,
        /// Another server of the same database (HOST:PORT, repeatable): S subscribers on
        /// each server, and the pours posted to each in turn, so that most deliveries cross
        /// from one server to another.
        #[arg(long, value_name = "HOST:PORT")]
        also: Vec<String>,
        /// Spread over V venues (`bench-1` to `bench-V`, made if missing): each subscriber
        /// follows one of them (`?venue=`), and the pours go to each in turn, so each is
        /// owed to S/V subscribers only. 0: no venues, every pour to every subscriber.
        #[arg(long, default_value_t = 0)]
        venues: usize,
    },
    /// One subscriber with since=0: how fast the stored pours are replayed to it.
    Replay,
    /// A chain: V venues of T taps, each with a keg, and N pours a minute apart on each
    /// tap; then times a bar's page load (the REST reads its snapshot makes, one after
    /// another, for venues in turn) and `GET /api/report?venue=` alone.
    VenuePage {
        /// Pours in the store before timing (posted as needed, spread over every tap).
        #[arg(short = 'n', long, default_value_t = 1_000_000)]
        pours: u64,
        #[arg(long, default_value_t = 50)]
        venues: usize,
        /// Taps per venue.
        #[arg(long, default_value_t = 20)]
        taps: u32,
        /// Page loads to time (and as many reports).
        #[arg(short = 'q', long, default_value_t = 1000)]
        requests: usize,
    },
    /// A bar's long history: a keg on each of T taps (8 beverages), N pours spread over the
    /// last D days; then times `GET /api/history` for a year by day (by beverage, and tap
    /// by tap) and by month (by glass).
    History {
        /// Pours in the store before timing (posted as needed).
        #[arg(short = 'n', long, default_value_t = 1_000_000)]
        pours: u64,
        #[arg(long, default_value_t = 20)]
        taps: u32,
        /// Days the pours are spread over, up to a minute ago.
        #[arg(long, default_value_t = 400)]
        days: u32,
        /// Requests of each kind to time.
        #[arg(short = 'q', long, default_value_t = 300)]
        requests: usize,
    },
    /// Poured versus sold: fills as `history` does, imports L sold lines over the same
    /// days through `POST /api/sales` (files of 100,000), maps the items, then times
    /// `GET /api/variance` for a year by hour and by day.
    Variance {
        /// Pours in the store before timing (posted as needed).
        #[arg(short = 'n', long, default_value_t = 1_000_000)]
        pours: u64,
        /// Sold lines imported (when the store has none).
        #[arg(short = 'l', long, default_value_t = 1_000_000)]
        lines: u64,
        #[arg(long, default_value_t = 20)]
        taps: u32,
        /// Days the pours and sales are spread over, up to a minute ago.
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// Requests of each kind to time.
        #[arg(short = 'q', long, default_value_t = 100)]
        requests: usize,
    },
    /// N pours published to an MQTT broker that the server reads (`--mqtt-url`), in order
    /// at QoS 1, each matched with its delivery to a WebSocket subscriber of the server:
    /// as fast as they go, or at R a second.
    Mqtt {
        /// The broker, HOST:PORT.
        #[arg(long, default_value = "127.0.0.1:1883")]
        broker: String,
        /// Messages to publish.
        #[arg(short = 'n', long, default_value_t = 100_000)]
        messages: u64,
        /// Messages per second; 0: as fast as the broker takes them.
        #[arg(short = 'r', long, default_value_t = 0.0)]
        rate: f64,
        /// Messages published and not yet acknowledged by the broker, at most.
        #[arg(long, default_value_t = 1000)]
        inflight: u16,
    },
    /// Streams `GET /api/beers/export` once: every stored pour, rows per second.
    Export {
        /// `csv` or `ndjson`.
        #[arg(long, default_value = "csv")]
        format: String,
    },
    /// Fills the store to N pours, then times list pages (offset and cursor).
    Query {
        /// Pours in the store before timing (posted as needed).
        #[arg(short = 'n', long, default_value_t = 100_000)]
        pours: u64,
        /// Pages to request.
        #[arg(short = 'q', long, default_value_t = 2000)]
        requests: usize,
    },
}

/// What subscribers received, matched against what was posted.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Matching {
    pub expected: u64,
    pub delivered: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    /// Received but not owed to it (another venue's pours).
    pub foreign: u64,
}

/// Matches one subscriber's received ids (in arrival order) against the posted ids.
pub fn match_deliveries(posted: &[u64], received: &[u64]) -> Matching {
    let mut seen = std::collections::HashSet::with_capacity(received.len());
    let mut m = Matching {
        expected: posted.len() as u64,
        ..Matching::default()
    };
    let mut highest = 0;
    for &id in received {
        if !seen.insert(id) {
            m.duplicated += 1;
            continue;
        }
        if id < highest {
            m.out_of_order += 1;
        }
        highest = highest.max(id);
    }
    let posted_set: std::collections::HashSet<u64> = posted.iter().copied().collect();
    m.delivered = seen.iter().filter(|id| posted_set.contains(id)).count() as u64;
    m.foreign = seen.len() as u64 - m.delivered;
    m.lost = m.expected - m.delivered;
    m
}

/// The server of `settings`, then the others.
fn servers(settings: &Settings, also: &[String]) -> Vec<String> {
    std::iter::once(host_port(settings))
        .chain(also.iter().cloned())
        .collect()
}

/// Results of `bench ingest`.
#[derive(Debug, Clone, Serialize)]
pub struct IngestResult {
    pub scenario: &'static str,
    /// Servers the connections were spread over.
    pub servers: usize,
    pub connections: usize,
    pub seconds: f64,
    pub pours: u64,
    pub errors: u64,
    pub pours_per_second: f64,
    pub latency: Latency,
    pub tool_cpu_percent: Option<f64>,
}

/// `bench ingest`.
pub async fn ingest(
    settings: &Settings,
    connections: usize,
    seconds: f64,
    also: &[String],
) -> Result<IngestResult, String> {
    let servers = servers(settings, also);
    let cpu = cpu_time();
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for c in 0..connections {
        let request = post_request(settings, 1 + c as u32, 200 + (c as u32 * 37) % 700);
        let addr = servers[c % servers.len()].clone();
        tasks.push(tokio::spawn(async move {
            let mut h = histogram();
            let mut errors = 0u64;
            let mut conn = Connection::open(&addr)
                .await
                .map_err(|e| format!("connect {addr}: {e}"))?;
            while Instant::now() < until {
                let sent = Instant::now();
                match conn.call(&request).await {
                    Ok((201, _)) => h.saturating_record(sent.elapsed().as_micros() as u64),
                    Ok(_) => errors += 1,
                    Err(e) => return Err(format!("connection lost: {e}")),
                }
            }
            Ok::<_, String>((h, errors))
        }));
    }
    let mut all = histogram();
    let mut errors = 0;
    for task in tasks {
        let (h, e) = task.await.map_err(|e| e.to_string())??;
        all.add(&h).map_err(|e| e.to_string())?;
        errors += e;
    }
    let wall = started.elapsed();
    Ok(IngestResult {
        scenario: "ingest",
        servers: servers.len(),
        connections,
        seconds: wall.as_secs_f64(),
        pours: all.len(),
        errors,
        pours_per_second: (all.len() as f64 / wall.as_secs_f64()).round(),
        latency: Latency::of(&all),
        tool_cpu_percent: tool_cpu(cpu, wall),
    })
}

/// Results of `bench fanout`.
#[derive(Debug, Clone, Serialize)]
pub struct FanoutResult {
    pub scenario: &'static str,
    /// Servers the subscribers were spread over (and the pours posted to, in turn).
    pub servers: usize,
    pub subscribers: usize,
    pub connect_seconds: f64,
    pub rate: f64,
    pub seconds: f64,
    pub pours_posted: u64,
    pub deliveries: u64,
    pub deliveries_per_second: f64,
    pub lost: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    /// Pours a subscriber was sent that were posted to another venue.
    pub foreign: u64,
    pub delivery_latency: Latency,
    pub post_latency: Latency,
    pub tool_cpu_percent: Option<f64>,
    pub quick_acks: bool,
    /// Venues the subscribers and pours were spread over (0: none).
    pub venues: usize,
}

/// The venue `bench-{i}` (from 1), made if it is missing.
async fn bench_venue(settings: &Settings, addr: &str, i: usize) -> Result<String, String> {
    let id = format!("bench-{i}");
    let body = format!(r#"{{"id": "{id}", "name": "Bench {i}", "timezone": "UTC"}}"#);
    let request = format!(
        "POST /api/venues HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n{}Content-Length: {}\r\n\r\n{body}",
        auth_header(settings),
        body.len()
    );
    let mut conn = Connection::open(addr).await.map_err(|e| e.to_string())?;
    match conn
        .call(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?
    {
        (201 | 409, _) => Ok(id),
        (status, body) => Err(format!(
            "POST /api/venues answered {status}: {}",
            String::from_utf8_lossy(&body)
        )),
    }
}

/// `bench fanout`.
pub async fn fanout(
    settings: &Settings,
    subscribers: usize,
    rate: f64,
    seconds: f64,
    quick_acks: bool,
    also: &[String],
    venues: usize,
) -> Result<FanoutResult, String> {
    let (servers, extra) = (servers(settings, also), auth_header(settings));
    let mut venue_ids = Vec::with_capacity(venues);
    for i in 1..=venues {
        venue_ids.push(bench_venue(settings, &servers[0], i).await?);
    }
    // Which venue subscriber `n` follows (0 without venues).
    let venue_of = |n: usize| if venues == 0 { 0 } else { n % venues };
    let connecting = Instant::now();
    let mut sockets = Vec::with_capacity(subscribers * servers.len());
    let mut followed = Vec::with_capacity(subscribers * servers.len());
    // Connect in waves, so that the listen backlog is not what is measured.
    for addr in &servers {
        for wave in (0..subscribers).collect::<Vec<_>>().chunks(256) {
            let handshakes = wave.iter().map(|&n| {
                let path = match venue_ids.get(venue_of(n)) {
                    Some(venue) => format!("/sockets/beers?venue={venue}"),
                    None => "/sockets/beers".to_owned(),
                };
                followed.push(venue_of(n));
                let extra = &extra;
                async move { Subscriber::connect(addr, addr, &path, extra, quick_acks).await }
            });
            for result in futures::future::join_all(handshakes).await {
                sockets.push(result.map_err(|e| format!("subscribe: {e}"))?);
            }
        }
    }
    // Every pour posted from here on is owed to every subscriber.
    for socket in &mut sockets {
        socket.hello().await.map_err(|e| format!("no hello: {e}"))?;
    }
    let connect_seconds = connecting.elapsed().as_secs_f64();

    // Each subscriber records (pour id, arrival) in its own vector: no shared state on
    // the receiving path. It stops once it has seen the last id posted to its venue (or
    // at `stop`).
    let stop = tokio_util::sync::CancellationToken::new();
    let groups = venues.max(1);
    let (last_posted, last_watch) = tokio::sync::watch::channel(vec![u64::MAX; groups]);
    let expected = (rate * seconds).round() as usize / groups + 16;
    let readers: Vec<_> = sockets
        .into_iter()
        .zip(followed.iter().copied())
        .map(|(mut socket, venue)| {
            let stop = stop.clone();
            let mut last = last_watch.clone();
            tokio::spawn(async move {
                // Sized up front: growing, every subscriber would copy its vector at the
                // same pour count, a stall of the tool that reads as server latency.
                let mut seen: Vec<(u64, Instant)> = Vec::with_capacity(expected);
                let mut highest = 0;
                let stopped = stop.cancelled();
                tokio::pin!(stopped);
                loop {
                    if highest >= last.borrow()[venue] {
                        break;
                    }
                    // Frames that came in one read arrived together: one clock reading.
                    let mut now = None;
                    let read = socket.read(|frame| {
                        if let Some(id) = std::str::from_utf8(frame).ok().and_then(pour_id) {
                            seen.push((id, *now.get_or_insert_with(Instant::now)));
                            highest = highest.max(id);
                        }
                    });
                    let open = tokio::select! {
                        _ = &mut stopped => break,
                        _ = last.changed() => continue,
                        open = read => open,
                    };
                    if !matches!(open, Ok(true)) {
                        break;
                    }
                }
                seen
            })
        })
        .collect();

    let cpu = cpu_time();
    let started = Instant::now();
    let sent_at: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let mut post_latency = histogram();
    let mut conns = Vec::with_capacity(servers.len());
    for addr in &servers {
        conns.push(Connection::open(addr).await.map_err(|e| e.to_string())?);
    }
    let mut posted: Vec<Vec<u64>> = vec![Vec::new(); groups];
    let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let total = (rate * seconds).round() as u64;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for n in 0..total {
        ticker.tick().await;
        let venue = n as usize % groups;
        let request = match venue_ids.get(venue) {
            Some(id) => post_request_to(
                settings,
                &format!("/api/venues/{id}/beers"),
                1 + (n % 50) as u32,
                500,
            ),
            None => post_request(settings, 1 + (n % 50) as u32, 500),
        };
        let sent = Instant::now();
        let conn = &mut conns[n as usize % servers.len()];
        let (status, body) = conn.call(&request).await.map_err(|e| e.to_string())?;
        post_latency.saturating_record(sent.elapsed().as_micros() as u64);
        if status != 201 {
            return Err(format!(
                "POST answered {status}: {}",
                String::from_utf8_lossy(&body)
            ));
        }
        let id = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["beer"]["id"].as_u64())
            .ok_or("POST answer without beer.id")?;
        sent_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, sent);
        posted[venue].push(id);
    }
    let posting = started.elapsed();
    let _ = last_posted.send(
        posted
            .iter()
            .map(|p| p.last().copied().unwrap_or(0))
            .collect(),
    );
    // Deliveries settle, or 10 s pass and whatever is missing counts as lost.
    let waiting = tokio::spawn(async move {
        let mut readers_done = Vec::new();
        for reader in readers {
            readers_done.push(reader.await);
        }
        readers_done
    });
    let stopper = {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(10)).await;
            stop.cancel();
        })
    };
    let finished = waiting.await.map_err(|e| e.to_string())?;
    stopper.abort();
    let sent_at = sent_at
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let mut delivery = histogram();
    let mut totals = Matching::default();
    for (seen, venue) in finished.into_iter().zip(followed) {
        let seen = seen.map_err(|e| e.to_string())?;
        let ids: Vec<u64> = seen.iter().map(|(id, _)| *id).collect();
        let m = match_deliveries(&posted[venue], &ids);
        totals.expected += m.expected;
        totals.delivered += m.delivered;
        totals.lost += m.lost;
        totals.duplicated += m.duplicated;
        totals.out_of_order += m.out_of_order;
        totals.foreign += m.foreign;
        for (id, at) in seen {
            if let Some(sent) = sent_at.get(&id) {
                delivery.saturating_record(at.saturating_duration_since(*sent).as_micros() as u64);
            }
        }
    }
    Ok(FanoutResult {
        scenario: "fanout",
        servers: servers.len(),
        subscribers: subscribers * servers.len(),
        connect_seconds: (connect_seconds * 1000.0).round() / 1000.0,
        rate,
        seconds: posting.as_secs_f64(),
        pours_posted: posted.iter().map(|p| p.len() as u64).sum(),
        deliveries: totals.delivered,
        deliveries_per_second: (totals.delivered as f64 / posting.as_secs_f64()).round(),
        lost: totals.lost,
        duplicated: totals.duplicated,
        out_of_order: totals.out_of_order,
        foreign: totals.foreign,
        delivery_latency: Latency::of(&delivery),
        post_latency: Latency::of(&post_latency),
        tool_cpu_percent: tool_cpu(cpu, started.elapsed()),
        quick_acks,
        venues,
    })
}

/// Results of `bench replay`.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayResult {
    pub scenario: &'static str,
    /// Pours replayed (the hello's lastId, less deletions).
    pub pours: u64,
    pub seconds: f64,
    pub pours_per_second: f64,
}

/// `bench replay`: reads the hello, then every replayed pour up to its lastId.
pub async fn replay(settings: &Settings) -> Result<ReplayResult, String> {
    let addr = host_port(settings);
    let started = Instant::now();
    let mut socket = Subscriber::connect(
        &addr,
        &addr,
        "/sockets/beers?since=0",
        &auth_header(settings),
        false,
    )
    .await
    .map_err(|e| format!("subscribe: {e}"))?;
    let (mut last_id, mut highest, mut pours) = (None, 0u64, 0u64);
    while last_id.is_none_or(|last| highest < last) {
        let open = tokio::time::timeout(
            Duration::from_secs(30),
            socket.read(|frame| {
                let Ok(text) = std::str::from_utf8(frame) else {
                    return;
                };
                if let Some(id) = pour_id(text) {
                    highest = id;
                    pours += 1;
                } else if text.contains("\"hello\"") {
                    last_id = serde_json::from_str::<serde_json::Value>(text)
                        .ok()
                        .and_then(|v| v["lastId"].as_u64());
                }
            }),
        )
        .await
        .map_err(|_| "the replay stalled for 30 s".to_owned())?
        .map_err(|e| e.to_string())?;
        if !open {
            return Err("the server closed the connection".into());
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(ReplayResult {
        scenario: "replay",
        pours,
        seconds: (seconds * 1000.0).round() / 1000.0,
        pours_per_second: (pours as f64 / seconds).round(),
    })
}

/// Results of `bench query`.
#[derive(Debug, Clone, Serialize)]
pub struct QueryResult {
    pub scenario: &'static str,
    pub stored: u64,
    pub requests: usize,
    pub page: Latency,
    pub cursor: Latency,
    pub pages_per_second: f64,
    pub tool_cpu_percent: Option<f64>,
}

/// `bench query`.
pub async fn query(
    settings: &Settings,
    pours: u64,
    requests: usize,
) -> Result<QueryResult, String> {
    let addr = host_port(settings);
    let mut conn = Connection::open(&addr).await.map_err(|e| e.to_string())?;
    let (_, body) = conn
        .call(&get_request(settings, "/api/beers?page_size=1"))
        .await
        .map_err(|e| e.to_string())?;
    let stored = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["total"].as_u64())
        .unwrap_or(0);
    if stored < pours {
        // Fill with 32 connections; a filled store is reused by the next run.
        let missing = pours - stored;
        let per = missing.div_ceil(32);
        let mut fillers = Vec::new();
        for c in 0..32u32 {
            let request = post_request(settings, 1 + c, 200 + (c * 53) % 700);
            let addr = addr.clone();
            fillers.push(tokio::spawn(async move {
                let mut conn = Connection::open(&addr).await.map_err(|e| e.to_string())?;
                for _ in 0..per {
                    let (status, _) = conn.call(&request).await.map_err(|e| e.to_string())?;
                    if status != 201 {
                        return Err(format!("fill: POST answered {status}"));
                    }
                }
                Ok::<(), String>(())
            }));
        }
        for f in fillers {
            f.await.map_err(|e| e.to_string())??;
        }
    }
    let stored = stored.max(pours);
    // A fresh connection: the first one sat idle through the fill, and servers close idle
    // keep-alive connections (Altair after --header-timeout).
    let mut conn = Connection::open(&addr).await.map_err(|e| e.to_string())?;
    let cpu = cpu_time();
    let started = Instant::now();
    let mut page = histogram();
    let mut cursor = histogram();
    let mut rng = crate::random::Rng::new(7);
    for n in 0..requests {
        let (target, h) = if n % 2 == 0 {
            ("/api/beers?page_size=50".to_owned(), &mut page)
        } else {
            let after = (rng.unit() * stored as f64) as u64;
            (
                format!("/api/beers?after={after}&page_size=50"),
                &mut cursor,
            )
        };
        let sent = Instant::now();
        let (status, _) = conn
            .call(&get_request(settings, &target))
            .await
            .map_err(|e| e.to_string())?;
        if status != 200 {
            return Err(format!("GET {target} answered {status}"));
        }
        h.saturating_record(sent.elapsed().as_micros() as u64);
    }
    let wall = started.elapsed();
    Ok(QueryResult {
        scenario: "query",
        stored,
        requests,
        page: Latency::of(&page),
        cursor: Latency::of(&cursor),
        pages_per_second: (requests as f64 / wall.as_secs_f64()).round(),
        tool_cpu_percent: tool_cpu(cpu, wall),
    })
}

/// Results of `bench venue-page`.
#[derive(Debug, Clone, Serialize)]
pub struct VenuePageResult {
    pub scenario: &'static str,
    pub stored: u64,
    pub venues: usize,
    pub taps: u32,
    pub requests: usize,
    /// The bar page's snapshot: every read it makes, one after another.
    pub page_load: Latency,
    pub report: Latency,
    pub tool_cpu_percent: Option<f64>,
}

/// `bench venue-page`.
pub async fn venue_page(
    settings: &Settings,
    pours: u64,
    venues: usize,
    taps: u32,
    requests: usize,
) -> Result<VenuePageResult, String> {
    let addr = host_port(settings);
    let mut ids = Vec::with_capacity(venues);
    for i in 1..=venues {
        ids.push(bench_venue(settings, &addr, i).await?);
    }
    let mut conn = Connection::open(&addr).await.map_err(|e| e.to_string())?;
    let (_, body) = fetch(&mut conn, &get_request(settings, "/api/beers?page_size=1")).await?;
    let stored = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["total"].as_u64())
        .unwrap_or(0);
    if stored == 0 {
        // A 1,000-litre tank on every tap: a long history leaves it half full.
        for venue in &ids {
            for tap in 1..=taps {
                let body = format!(
                    r#"{{"venue": "{venue}", "tapId": {tap}, "beverage": "Lager {tap}", "sizeMl": 1000000}}"#
                );
                let request = format!(
                    "POST /api/kegs HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n{}Content-Length: {}\r\n\r\n{body}",
                    auth_header(settings),
                    body.len()
                );
                let (status, answer) = fetch(&mut conn, request.as_bytes()).await?;
                if status != 201 {
                    return Err(format!(
                        "POST /api/kegs answered {status}: {}",
                        String::from_utf8_lossy(&answer)
                    ));
                }
            }
        }
    }
    if stored < pours {
        // Every tap pours once a minute, the latest a minute ago: no burst, no clock ahead.
        let all_taps = venues as u64 * u64::from(taps);
        let rounds = pours.div_ceil(all_taps);
        let start = chrono::Utc::now() - chrono::Duration::minutes(rounds as i64 + 1);
        let connections = 32u64;
        let mut fillers = Vec::new();
        for c in 0..connections {
            let (addr, ids, settings) = (addr.clone(), ids.clone(), settings.clone());
            fillers.push(tokio::spawn(async move {
                let mut conn = Connection::open(&addr).await.map_err(|e| e.to_string())?;
                let mut i = stored + c;
                while i < pours {
                    let venue = &ids[(i % venues as u64) as usize];
                    let tap = (i / venues as u64) % u64::from(taps) + 1;
                    let at = start + chrono::Duration::minutes((i / all_taps) as i64);
                    let body = format!(
                        r#"{{"tapId": {tap}, "volume": 500, "timestamp": "{}"}}"#,
                        at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                    );
                    let request = format!(
                        "POST /api/venues/{venue}/beers HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n{}Content-Length: {}\r\n\r\n{body}",
                        auth_header(&settings),
                        body.len()
                    );
                    let (status, answer) = fetch(&mut conn, request.as_bytes()).await?;
                    if status != 201 {
                        return Err(format!("fill: POST answered {status}: {}", String::from_utf8_lossy(&answer)));
                    }
                    i += connections;
                }
                Ok::<(), String>(())
            }));
        }
        for f in fillers {
            f.await.map_err(|e| e.to_string())??;
        }
    }
    let stored = stored.max(pours);
    let mut conn = Connection::open(&addr).await.map_err(|e| e.to_string())?;
    let cpu = cpu_time();
    let started = Instant::now();
    let (mut page, mut report) = (histogram(), histogram());
    for n in 0..requests {
        let venue = &ids[n % venues];
        let load = Instant::now();
        let mut last_id = 0;
        for target in [
            "/api/venues".to_owned(),
            "/api/glasses".to_owned(),
            format!("/api/report?venue={venue}"),
            format!("/api/taps?venue={venue}"),
            format!("/api/alerts?state=open&page_size=1000&venue={venue}"),
            format!("/api/alerts?state=acknowledged&page_size=1000&venue={venue}"),
        ] {
            let (status, body) = fetch(&mut conn, &get_request(settings, &target)).await?;
            if status != 200 {
                return Err(format!("GET {target} answered {status}"));
            }
            if target.starts_with("/api/report") {
                last_id = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["lastId"].as_u64())
                    .unwrap_or(0);
            }
        }
        // The latest pours the report counts, as the page asks for them.
        let target = format!(
            "/api/beers?after={}&page_size=1000&venue={venue}",
            last_id.saturating_sub(200)
        );
        let (status, _) = fetch(&mut conn, &get_request(settings, &target)).await?;
        if status != 200 {
            return Err(format!("GET {target} answered {status}"));
        }
        page.saturating_record(load.elapsed().as_micros() as u64);
        let target = format!("/api/report?venue={venue}");
        let sent = Instant::now();
        let (status, _) = fetch(&mut conn, &get_request(settings, &target)).await?;
        if status != 200 {
            return Err(format!("GET {target} answered {status}"));
        }
        report.saturating_record(sent.elapsed().as_micros() as u64);
    }
    Ok(VenuePageResult {
        scenario: "venue_page",
        stored,
        venues,
        taps,
        requests,
        page_load: Latency::of(&page),
        report: Latency::of(&report),
        tool_cpu_percent: tool_cpu(cpu, started.elapsed()),
    })
}

/// `println!` that ignores a closed stdout.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// Runs a scenario, prints the summary and the JSON line; returns whether it succeeded.
pub async fn run(settings: &Settings, scenario: &Scenario) -> bool {
    let outcome = match *scenario {
        Scenario::Ingest { connections, duration, ref also } => ingest(settings, connections, duration, also).await.map(|r| {
            say!(
                "ingest: {} servers, {} connections, {:.1} s: {} pours/s, {} errors; latency p50 {} ms, p99 {} ms, max {} ms; tool CPU {}",
                r.servers, r.connections, r.seconds, r.pours_per_second, r.errors, r.latency.p50_ms, r.latency.p99_ms, r.latency.max_ms,
                cpu_text(r.tool_cpu_percent)
            );
            serde_json::to_string(&r)
        }),
        Scenario::Fanout { subscribers, rate, duration, quick_acks, ref also, venues } => fanout(settings, subscribers, rate, duration, quick_acks, also, venues).await.map(|r| {
            say!(
                "fanout: {} servers, {} subscribers over {} venues (connected in {:.2} s), {} pours/s for {:.1} s: {} deliveries/s; lost {}, duplicated {}, out of order {}, from another venue {}; delivery p50 {} ms, p99 {} ms, max {} ms; POST p99 {} ms; tool CPU {}",
                r.servers, r.subscribers, r.venues, r.connect_seconds, r.rate, r.seconds, r.deliveries_per_second, r.lost, r.duplicated, r.out_of_order, r.foreign,
                r.delivery_latency.p50_ms, r.delivery_latency.p99_ms, r.delivery_latency.max_ms, r.post_latency.p99_ms,
                cpu_text(r.tool_cpu_percent)
            );
            serde_json::to_string(&r)
        }),
        Scenario::VenuePage { pours, venues, taps, requests } => venue_page(settings, pours, venues, taps, requests).await.map(|r| {
            say!(
                "venue page: {} pours stored over {} venues of {} taps; {} page loads: p50 {} ms, p99 {} ms, max {} ms; report?venue p50 {} ms, p99 {} ms, max {} ms; tool CPU {}",
                r.stored, r.venues, r.taps, r.requests, r.page_load.p50_ms, r.page_load.p99_ms, r.page_load.max_ms,
                r.report.p50_ms, r.report.p99_ms, r.report.max_ms, cpu_text(r.tool_cpu_percent)
            );
            serde_json::to_string(&r)
        }),
        Scenario::History { pours, taps, days, requests } => history::history(settings, pours, taps, days, requests).await.map(|r| {
            say!(
                "history: {} pours stored over {} days on {} taps; {} requests of each: a year by day by beverage p50 {} ms, p99 {} ms; by tap p50 {} ms, p99 {} ms; by month p50 {} ms, p99 {} ms; tool CPU {}",
                r.stored, r.days, r.taps, r.requests, r.by_beverage.p50_ms, r.by_beverage.p99_ms, r.by_tap.p50_ms, r.by_tap.p99_ms,
                r.by_month.p50_ms, r.by_month.p99_ms, cpu_text(r.tool_cpu_percent)
            );
            serde_json::to_string(&r)
        }),
        Scenario::Variance { pours, lines, taps, days, requests } => variance::variance(settings, pours, lines, taps, days, requests).await.map(|r| {
            say!(
                "variance: {} pours stored; {} sold lines imported in {:.2} s: {} lines/s; {} requests of each: a year by hour p50 {} ms, p99 {} ms ({} bytes); by day p50 {} ms, p99 {} ms; tool CPU {}",
                r.stored, r.imported, r.import_seconds, r.import_lines_per_second, r.requests, r.by_hour.p50_ms, r.by_hour.p99_ms,
                r.by_hour_bytes, r.by_day.p50_ms, r.by_day.p99_ms, cpu_text(r.tool_cpu_percent)
            );
            serde_json::to_string(&r)
        }),
        Scenario::Export { ref format } => history::export(settings, format).await.map(|r| {
            say!(
                "export: {} rows of {} ({} bytes) in {:.2} s: {} rows/s; first byte after {:.1} ms; tool CPU {}",
                r.rows, r.format, r.bytes, r.seconds, r.rows_per_second, r.first_byte_ms, cpu_text(r.tool_cpu_percent)
            );
            serde_json::to_string(&r)
        }),
        Scenario::Mqtt { ref broker, messages, rate, inflight } => mqtt::mqtt(settings, broker, messages, rate, inflight).await.map(|r| {
            say!(
                "mqtt: {} messages at {}: {} delivered in {:.2} s: {} pours/s; publish to delivery p50 {} ms, p99 {} ms, max {} ms; tool CPU {}",
                r.messages, if r.rate > 0.0 { format!("{}/s", r.rate) } else { "full speed".into() }, r.delivered, r.seconds,
                r.pours_per_second, r.delivery_latency.p50_ms, r.delivery_latency.p99_ms, r.delivery_latency.max_ms, cpu_text(r.tool_cpu_percent)
            );
            serde_json::to_string(&r)
        }),
        Scenario::Replay => replay(settings).await.map(|r| {
            say!("replay: {} pours in {:.2} s: {} pours/s", r.pours, r.seconds, r.pours_per_second);
            serde_json::to_string(&r)
        }),
        Scenario::Query { pours, requests } => query(settings, pours, requests).await.map(|r| {
            say!(
                "query: {} pours stored, {} pages: page p50 {} ms, p99 {} ms; cursor p50 {} ms, p99 {} ms; {} pages/s; tool CPU {}",
                r.stored, r.requests, r.page.p50_ms, r.page.p99_ms, r.cursor.p50_ms, r.cursor.p99_ms, r.pages_per_second,
                cpu_text(r.tool_cpu_percent)
            );
            serde_json::to_string(&r)
        }),
    };
    match outcome {
        Ok(Ok(json)) => {
            // A closed pipe (`| head`) is not worth a panic.
            use std::io::Write;
            let _ = writeln!(std::io::stdout(), "{json}");
            true
        }
        Ok(Err(e)) => {
            eprintln!("altair-client bench: cannot write the result: {e}");
            false
        }
        Err(e) => {
            eprintln!("altair-client bench: {e}");
            false
        }
    }
}

fn cpu_text(percent: Option<f64>) -> String {
    percent.map_or("unknown".into(), |p| format!("{p}% of a core"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_counts_losses_duplicates_and_disorder() {
        let m = match_deliveries(&[1, 2, 3, 4, 5], &[1, 3, 2, 3, 5, 9]);
        assert_eq!(
            m,
            Matching {
                expected: 5,
                delivered: 4,
                lost: 1,
                duplicated: 1,
                out_of_order: 1,
                foreign: 1,
            }
        );
        let perfect = match_deliveries(&[7, 8], &[7, 8]);
        assert_eq!(
            (perfect.lost, perfect.duplicated, perfect.out_of_order),
            (0, 0, 0)
        );
    }

    #[test]
    fn pour_ids_come_out_of_pour_frames_only() {
        assert_eq!(
            pour_id(r#"{"event":"pour","beer":{"id":17,"tapId":3,"volume":500.0}}"#),
            Some(17)
        );
        assert_eq!(
            pour_id(r#"{"event":"pour","beer":{"tapId":3, "id": 42}}"#),
            Some(42)
        );
        assert_eq!(pour_id(r#"{"event":"deleted","id":17}"#), None);
        assert_eq!(
            pour_id(r#"{"event":"report","report":{"byTap":[{"tapId":3}]}}"#),
            None
        );
    }

    #[test]
    fn percentiles_are_read_in_milliseconds() {
        let mut h = histogram();
        for us in 1..=1000 {
            h.saturating_record(us * 10);
        }
        let l = Latency::of(&h);
        assert!((l.p50_ms - 5.0).abs() < 0.01, "{l:?}");
        assert!((l.p99_ms - 9.9).abs() < 0.01, "{l:?}");
        assert!((l.max_ms - 10.0).abs() < 0.01, "{l:?}");
    }

    #[test]
    fn own_cpu_time_is_readable() {
        assert!(cpu_time().is_some());
    }
}
