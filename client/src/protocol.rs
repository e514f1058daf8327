//! What the server says, as much of it as a tap needs. The full reference is the server's
//! README; unknown fields are ignored so that newer servers stay readable.

use serde::{Deserialize, Serialize};

/// A glass band from `GET /api/glasses`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Glass {
    pub name: String,
    pub min: f64,
    pub max: f64,
    /// The serving a bar pours in it, if the catalogue names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nominal: Option<f64>,
}

/// `GET /api/glasses`.
#[derive(Debug, Deserialize)]
pub struct Glasses {
    pub glasses: Vec<Glass>,
}

/// A stored pour.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pour {
    pub id: u64,
    pub tap_id: u32,
    pub volume: f64,
    #[serde(rename = "type")]
    pub glass: String,
    pub timestamp: String,
}

/// One tap's share in a report.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TapShare {
    pub tap_id: u32,
    pub pours: u64,
    pub share_pct: f64,
}

/// The periodic report (the fields a summary line needs).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub total_pours: u64,
    pub total_volume_ml: f64,
    pub pours_last_minute: u64,
    #[serde(default)]
    pub by_tap: Vec<TapShare>,
}

/// A frame of `/sockets/beers`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "event", rename_all = "camelCase")]
pub enum Event {
    #[serde(rename_all = "camelCase")]
    Hello {
        last_id: u64,
    },
    Pour {
        beer: Pour,
    },
    Deleted {
        id: u64,
    },
    Report {
        report: Report,
    },
    /// An event this client does not know yet.
    #[serde(other)]
    Unknown,
}

/// The body of `POST /api/beers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewPour {
    pub tap_id: u32,
    pub volume: f64,
    pub timestamp: String,
}
