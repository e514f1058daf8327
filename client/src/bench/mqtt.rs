//! `bench mqtt`: pours published to a broker the server reads, delivered to a WebSocket
//! subscriber of the server.
//!
//! One publisher, in order, at QoS 1: the broker, the server and the fan-out keep that
//! order, so the k-th pour the subscriber hears is the k-th message published. With no
//! rate, as fast as the broker takes them (up to `inflight` unacknowledged): end-to-end
//! throughput. With a rate: each message's time from publish to delivery.

use std::time::{Duration, Instant};

use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use serde::Serialize;

use super::measure::{Latency, auth_header, cpu_time, histogram, host_port, pour_id, tool_cpu};
use super::subscriber::Subscriber;
use crate::config::Settings;

#[derive(Debug, Serialize)]
pub struct MqttResult {
    pub scenario: &'static str,
    pub messages: u64,
    /// Messages per second asked for (0: as fast as they go).
    pub rate: f64,
    pub seconds: f64,
    /// Pours delivered to the subscriber per second, from the first publish to the last
    /// delivery.
    pub pours_per_second: f64,
    pub delivered: u64,
    /// From publishing a message to the subscriber reading its pour.
    pub delivery_latency: Latency,
    pub tool_cpu_percent: Option<f64>,
}

/// Publishes `messages` pours to the broker at `broker` (HOST:PORT), at `rate` a second
/// (0: as fast as they go), over taps 1 to 50 of the default venue.
pub async fn mqtt(
    settings: &Settings,
    broker: &str,
    messages: u64,
    rate: f64,
    inflight: u16,
) -> Result<MqttResult, String> {
    let (host, port) = broker
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.to_owned(), p.parse::<u16>().ok()?)))
        .ok_or_else(|| format!("--broker {broker:?}: HOST:PORT"))?;
    let server = host_port(settings);
    let mut subscriber = Subscriber::connect(
        &server,
        &server,
        "/sockets/beers",
        &auth_header(settings),
        true,
    )
    .await
    .map_err(|e| format!("subscribe: {e}"))?;
    subscriber
        .hello()
        .await
        .map_err(|e| format!("no hello: {e}"))?;

    let mut options = MqttOptions::new(format!("altair-bench-{}", std::process::id()), host, port);
    options
        .set_outgoing_inflight_upper_limit(inflight)
        .set_keep_alive(Duration::from_secs(30));
    let (client, mut events) = AsyncClient::new(options, 1024);
    // The event loop must run for anything to go out; it stops when the client is dropped.
    let driver = tokio::spawn(async move {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) | Ok(_) => {}
                Err(e) => {
                    eprintln!("altair-client bench: broker: {e}");
                    return;
                }
            }
        }
    });

    let cpu = cpu_time();
    let started = Instant::now();
    let publisher = tokio::spawn(async move {
        let mut sent = Vec::with_capacity(messages as usize);
        let gap = (rate > 0.0).then(|| Duration::from_secs_f64(1.0 / rate));
        for n in 0..messages {
            if let Some(gap) = gap {
                let due = started + gap.mul_f64(n as f64);
                tokio::time::sleep_until(due.into()).await;
            }
            let topic = format!("altair/taps/{}/pours", 1 + n % 50);
            let body = format!(r#"{{"volume": {}}}"#, 300 + n % 200);
            sent.push(Instant::now());
            client
                .publish(topic, QoS::AtLeastOnce, false, body)
                .await
                .map_err(|e| format!("publish: {e}"))?;
        }
        Ok::<_, String>((sent, client))
    });

    let mut arrived: Vec<Instant> = Vec::with_capacity(messages as usize);
    let mut first_id = None;
    let deadline = tokio::time::sleep(
        Duration::from_secs(60)
            + Duration::from_secs_f64(if rate > 0.0 {
                messages as f64 / rate
            } else {
                0.0
            }),
    );
    tokio::pin!(deadline);
    while (arrived.len() as u64) < messages {
        let mut now = None;
        let read = subscriber.read(|frame| {
            if let Some(id) = std::str::from_utf8(frame).ok().and_then(pour_id) {
                first_id.get_or_insert(id);
                arrived.push(*now.get_or_insert_with(Instant::now));
            }
        });
        tokio::select! {
            () = &mut deadline => break,
            open = read => if !matches!(open, Ok(true)) {
                return Err("the server closed the subscription".into());
            },
        }
    }
    let wall = started.elapsed();
    let (sent, client) = publisher.await.map_err(|e| format!("publisher: {e}"))??;
    drop(client);
    driver.abort();
    let mut h = histogram();
    for (at, published) in arrived.iter().zip(&sent) {
        h.saturating_record(at.duration_since(*published).as_micros() as u64);
    }
    let last = arrived.last().copied().unwrap_or(started);
    let seconds = last.duration_since(started).as_secs_f64();
    Ok(MqttResult {
        scenario: "mqtt",
        messages,
        rate,
        seconds: (seconds * 1000.0).round() / 1000.0,
        pours_per_second: ((arrived.len() as f64 / seconds.max(1e-9)) * 10.0).round() / 10.0,
        delivered: arrived.len() as u64,
        delivery_latency: Latency::of(&h),
        tool_cpu_percent: tool_cpu(cpu, wall),
    })
}
