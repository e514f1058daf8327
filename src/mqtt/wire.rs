//! The connection to the broker, in MQTT 5 or, for a broker that speaks only that, MQTT
//! 3.1.1 (`--mqtt-protocol 3.1.1`). The rest of the link reads MQTT 5's types; a 3.1.1
//! connection's packets are turned into them here, and what 3.1.1 lacks is left out
//! (user properties, no-local subscriptions, session expiry: the broker keeps the session
//! as it is configured to).

use std::time::Duration;

use rumqttc::v5;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{ConnAck, ConnectReturnCode, Packet, Publish, SubAck};

pub use crate::config::MqttProtocol as Protocol;

/// A subscription: its filter, QoS, and whether to leave out what this connection
/// publishes (MQTT 5 only).
pub struct Filter {
    pub path: String,
    pub qos: QoS,
    pub no_local: bool,
}

/// The handle that publishes, subscribes and acknowledges.
#[derive(Clone)]
pub enum Client {
    V5(v5::AsyncClient),
    V311(rumqttc::AsyncClient),
}

/// What the connection brings, polled by one task.
pub enum Events {
    // Boxed: the two event loops differ in size by a kilobyte.
    V5(Box<v5::EventLoop>),
    V311(Box<rumqttc::EventLoop>),
}

/// The connection's settings, for either protocol.
pub struct Options {
    pub client_id: String,
    pub host: String,
    pub port: u16,
    pub session_expiry: Duration,
    pub receive_maximum: u16,
    pub max_packet: u32,
    /// Topic and payload of the last will (retained, QoS 1).
    pub will: (String, &'static str),
    pub credentials: Option<(String, String)>,
    pub tls: Option<rumqttc::TlsConfiguration>,
}

/// A connection (not yet made: polling `Events` makes it) and its handle.
pub fn connect(protocol: Protocol, o: Options, capacity: usize) -> (Client, Events) {
    let keep_alive = Duration::from_secs(30);
    match protocol {
        Protocol::V5 => {
            let mut options = v5::MqttOptions::new(&o.client_id, &o.host, o.port);
            options
                .set_clean_start(false)
                .set_session_expiry_interval(Some(
                    u32::try_from(o.session_expiry.as_secs()).unwrap_or(u32::MAX),
                ))
                .set_manual_acks(true)
                .set_keep_alive(keep_alive)
                .set_receive_maximum(Some(o.receive_maximum))
                .set_max_packet_size(Some(o.max_packet));
            options.set_last_will(v5::mqttbytes::v5::LastWill::new(
                o.will.0,
                o.will.1,
                QoS::AtLeastOnce,
                true,
                None,
            ));
            if let Some((user, password)) = o.credentials {
                options.set_credentials(user, password);
            }
            if let Some(tls) = o.tls {
                options.set_transport(rumqttc::Transport::tls_with_config(tls));
            }
            let (client, events) = v5::AsyncClient::new(options, capacity);
            (Client::V5(client), Events::V5(Box::new(events)))
        }
        Protocol::V311 => {
            let mut options = rumqttc::MqttOptions::new(&o.client_id, &o.host, o.port);
            let max = usize::try_from(o.max_packet).unwrap_or(usize::MAX);
            options
                .set_clean_session(false)
                .set_manual_acks(true)
                .set_keep_alive(keep_alive)
                .set_max_packet_size(max, max);
            options.set_last_will(rumqttc::LastWill::new(
                o.will.0,
                o.will.1,
                rumqttc::QoS::AtLeastOnce,
                true,
            ));
            if let Some((user, password)) = o.credentials {
                options.set_credentials(user, password);
            }
            if let Some(tls) = o.tls {
                options.set_transport(rumqttc::Transport::tls_with_config(tls));
            }
            let (client, events) = rumqttc::AsyncClient::new(options, capacity);
            (Client::V311(client), Events::V311(Box::new(events)))
        }
    }
}

fn qos4(qos: QoS) -> rumqttc::QoS {
    match qos {
        QoS::AtMostOnce => rumqttc::QoS::AtMostOnce,
        QoS::AtLeastOnce => rumqttc::QoS::AtLeastOnce,
        QoS::ExactlyOnce => rumqttc::QoS::ExactlyOnce,
    }
}

fn qos5(qos: rumqttc::QoS) -> QoS {
    match qos {
        rumqttc::QoS::AtMostOnce => QoS::AtMostOnce,
        rumqttc::QoS::AtLeastOnce => QoS::AtLeastOnce,
        rumqttc::QoS::ExactlyOnce => QoS::ExactlyOnce,
    }
}

/// A full queue, or a connection gone: why the handle could not take a request.
#[derive(Debug)]
pub struct Full(pub String);

impl Client {
    /// Acknowledges a message (a PUBACK for QoS 1).
    pub fn try_ack(&self, publish: &Publish) -> Result<(), Full> {
        match self {
            Client::V5(c) => c.try_ack(publish).map_err(|e| Full(e.to_string())),
            Client::V311(c) => {
                // The acknowledgement needs only the packet id and QoS.
                let mut ack = rumqttc::Publish::new("", qos4(publish.qos), Vec::new());
                ack.pkid = publish.pkid;
                c.try_ack(&ack).map_err(|e| Full(e.to_string()))
            }
        }
    }

    /// Publishes without waiting for room in the queue.
    pub fn try_publish(
        &self,
        topic: String,
        qos: QoS,
        retain: bool,
        payload: impl Into<Vec<u8>>,
    ) -> Result<(), Full> {
        let payload: Vec<u8> = payload.into();
        match self {
            Client::V5(c) => c
                .try_publish(topic, qos, retain, payload)
                .map_err(|e| Full(e.to_string())),
            Client::V311(c) => c
                .try_publish(topic, qos4(qos), retain, payload)
                .map_err(|e| Full(e.to_string())),
        }
    }

    /// Publishes, waiting for room in the queue.
    pub async fn publish(
        &self,
        topic: String,
        qos: QoS,
        retain: bool,
        payload: impl Into<Vec<u8>>,
    ) -> Result<(), Full> {
        let payload: Vec<u8> = payload.into();
        match self {
            Client::V5(c) => c
                .publish(topic, qos, retain, payload)
                .await
                .map_err(|e| Full(e.to_string())),
            Client::V311(c) => c
                .publish(topic, qos4(qos), retain, payload)
                .await
                .map_err(|e| Full(e.to_string())),
        }
    }

    pub fn try_subscribe(&self, filters: Vec<Filter>) -> Result<(), Full> {
        match self {
            Client::V5(c) => c
                .try_subscribe_many(filters.into_iter().map(|f| v5::mqttbytes::v5::Filter {
                    nolocal: f.no_local,
                    ..v5::mqttbytes::v5::Filter::new(f.path, f.qos)
                }))
                .map_err(|e| Full(e.to_string())),
            Client::V311(c) => c
                .try_subscribe_many(
                    filters
                        .into_iter()
                        .map(|f| rumqttc::SubscribeFilter::new(f.path, qos4(f.qos))),
                )
                .map_err(|e| Full(e.to_string())),
        }
    }

    pub fn try_disconnect(&self) -> Result<(), Full> {
        match self {
            Client::V5(c) => c.try_disconnect().map_err(|e| Full(e.to_string())),
            Client::V311(c) => c.try_disconnect().map_err(|e| Full(e.to_string())),
        }
    }
}

impl Events {
    /// The next incoming packet the link reads (ConnAck, SubAck, Publish), as MQTT 5's;
    /// `None` for any other event. An error is the connection's: it is made again on the
    /// next poll.
    pub async fn poll(&mut self) -> Result<Option<Packet>, String> {
        match self {
            Events::V5(events) => match events.poll().await {
                Ok(v5::Event::Incoming(packet)) => Ok(Some(packet)),
                Ok(_) => Ok(None),
                Err(e) => Err(e.to_string()),
            },
            Events::V311(events) => match events.poll().await {
                Ok(rumqttc::Event::Incoming(packet)) => Ok(as_v5(packet)),
                Ok(_) => Ok(None),
                Err(e) => Err(e.to_string()),
            },
        }
    }
}

/// A 3.1.1 packet the link reads, as MQTT 5's.
fn as_v5(packet: rumqttc::Packet) -> Option<Packet> {
    use rumqttc::v5::mqttbytes::v5::SubscribeReasonCode as Code5;
    match packet {
        rumqttc::Packet::ConnAck(ack) => Some(Packet::ConnAck(ConnAck {
            session_present: ack.session_present,
            code: ConnectReturnCode::Success,
            properties: None,
        })),
        rumqttc::Packet::SubAck(ack) => Some(Packet::SubAck(SubAck {
            pkid: ack.pkid,
            return_codes: ack
                .return_codes
                .into_iter()
                .map(|code| match code {
                    rumqttc::SubscribeReasonCode::Success(qos) => Code5::Success(qos5(qos)),
                    rumqttc::SubscribeReasonCode::Failure => Code5::Failure,
                })
                .collect(),
            properties: None,
        })),
        rumqttc::Packet::Publish(p) => Some(Packet::Publish(Publish {
            dup: p.dup,
            qos: qos5(p.qos),
            retain: p.retain,
            topic: bytes::Bytes::from(p.topic.into_bytes()),
            pkid: p.pkid,
            payload: p.payload,
            properties: None,
        })),
        _ => None,
    }
}
