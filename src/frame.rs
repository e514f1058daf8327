//! An event as a WebSocket frame: serialized once, its bytes shared by every subscriber
//! that gets it.

use serde::Serialize;
use tokio_tungstenite::tungstenite::Bytes;
use tokio_tungstenite::tungstenite::protocol::frame::{
    self as ws,
    coding::{Data, OpCode},
};

use crate::alert::AlertEvent;
use crate::bar::Notice;
use crate::bus::Event;
use crate::keg::KegEvent;
use crate::pour::Pour;
use crate::report::Report;

/// One serialized event, shared by every subscriber that gets it.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The pour's id for pour events, so that a replaying subscriber can drop duplicates.
    pub pour_id: Option<u64>,
    /// The keg, tap or alert event's sequence number, for the same reason.
    pub keg_seq: Option<u64>,
    /// The whole WebSocket text frame, header and JSON. Server frames are not masked, so
    /// every subscriber is sent these very bytes: nothing is encoded per subscriber.
    pub wire: Bytes,
}

/// The event frames as they go on the wire.
#[derive(Serialize)]
#[serde(tag = "event", rename_all = "camelCase")]
enum Wire<'a> {
    Pour {
        beer: &'a Pour,
    },
    Deleted {
        id: u64,
    },
    Report {
        report: &'a Report,
    },
    Keg {
        #[serde(flatten)]
        detail: &'a KegEvent,
    },
    Tap {
        #[serde(flatten)]
        detail: &'a KegEvent,
    },
    Alert {
        #[serde(flatten)]
        detail: &'a AlertEvent,
    },
}

impl Frame {
    /// Serializes `event`: once per event, however many subscribers get it.
    pub fn of(event: &Event) -> Frame {
        let (pour_id, wire) = match event {
            Event::Poured(pour) => (Some(pour.id), Wire::Pour { beer: pour }),
            Event::Deleted(pour) => (None, Wire::Deleted { id: pour.id }),
            Event::Report(report) => (None, Wire::Report { report }),
            Event::Keg(detail) => return Frame::keg(detail),
            Event::Alert(detail) => return Frame::alert(detail),
        };
        Frame::text(pour_id, to_json(&wire))
    }

    /// The frame for a keg or tap event (also as replayed to a single subscriber).
    pub fn keg(detail: &KegEvent) -> Frame {
        let wire = if detail.kind.is_tap() {
            Wire::Tap { detail }
        } else {
            Wire::Keg { detail }
        };
        Frame {
            keg_seq: Some(detail.seq),
            ..Frame::text(None, to_json(&wire))
        }
    }

    /// The frame for an alert's change (also as replayed to a single subscriber).
    pub fn alert(detail: &AlertEvent) -> Frame {
        Frame {
            // An update has no place in the sequence: nothing replayed stands for it.
            keg_seq: (detail.seq > 0).then_some(detail.seq),
            ..Frame::text(None, to_json(&Wire::Alert { detail }))
        }
    }

    /// The frame for a keg, tap or alert event, as replayed to a single subscriber.
    pub fn notice(notice: &Notice) -> Frame {
        match notice {
            Notice::Keg(detail) => Frame::keg(detail),
            Notice::Alert(detail) => Frame::alert(detail),
        }
    }

    /// The frame for one pour, as replayed to a single subscriber.
    pub fn pour(pour: &Pour) -> Frame {
        Frame::text(Some(pour.id), to_json(&Wire::Pour { beer: pour }))
    }

    fn text(pour_id: Option<u64>, json: String) -> Frame {
        let mut wire = Vec::with_capacity(json.len() + 10);
        // Writing into a Vec cannot fail.
        if let Err(e) = ws::Frame::message(json, OpCode::Data(Data::Text), true).format(&mut wire) {
            log::error!("event frame encoding failed: {e}");
        }
        Frame {
            pour_id,
            keg_seq: None,
            wire: wire.into(),
        }
    }

    /// The JSON text the frame carries, after its header (2, 4 or 10 bytes by length).
    #[cfg(test)]
    pub fn json(&self) -> &[u8] {
        let header = match self.wire[1] & 0x7f {
            126 => 4,
            127 => 10,
            _ => 2,
        };
        &self.wire[header..]
    }
}

/// Serializes a value made only of strings, numbers and sequences, which cannot fail.
pub fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| {
        log::error!("event serialization failed: {e}");
        String::from("{}")
    })
}
