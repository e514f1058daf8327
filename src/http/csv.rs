//! Lists and reports as CSV (RFC 4180) or NDJSON, for spreadsheets and scripts: which one
//! a request asks for, and cells written so that a spreadsheet cannot take one for a
//! formula.

use std::sync::Arc;

use warp::http::{HeaderMap, HeaderValue, StatusCode, header};
use warp::reply::Response;

use super::error::ApiError;
use crate::glass::{Catalogue, UNCLASSIFIED};
use crate::history::{Counts, Document};
use crate::keg::KegView;
use crate::pour::{Flag, Pour};
use crate::report::TypeTally;

/// How a request wants its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
    /// One JSON object a line (the export only).
    Ndjson,
}

/// `format=` on a list or report (for the OpenAPI document).
#[derive(Debug, Clone, Copy, utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[expect(dead_code, reason = "only describes the parameter; `format` reads it")]
pub enum ListFormat {
    Json,
    Csv,
}

/// `format=` on the export (for the OpenAPI document).
#[derive(Debug, Clone, Copy, utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[expect(dead_code, reason = "only describes the parameter; `format` reads it")]
pub enum ExportFormat {
    Csv,
    Ndjson,
}

/// The format a request asks for: `?format=json|csv|ndjson` if given, else `Accept`
/// naming `text/csv` (or `application/x-ndjson`), else JSON. A route that streams
/// (`ndjson`) answers CSV or NDJSON only, CSV by default.
pub fn format(headers: &HeaderMap, raw_query: &str, ndjson: bool) -> Result<Format, ApiError> {
    let format = negotiate(headers, raw_query, ndjson)?;
    match format {
        Format::Json if ndjson && raw_query_names_json(raw_query) => Err(ApiError::BadRequest(
            "format must be csv or ndjson, not \"json\"".into(),
        )),
        Format::Json if ndjson => Ok(Format::Csv),
        format => Ok(format),
    }
}

fn raw_query_names_json(raw_query: &str) -> bool {
    form_urlencoded::parse(raw_query.as_bytes())
        .any(|(key, value)| key == "format" && value == "json")
}

fn negotiate(headers: &HeaderMap, raw_query: &str, ndjson: bool) -> Result<Format, ApiError> {
    let asked = form_urlencoded::parse(raw_query.as_bytes())
        .find(|(key, _)| key == "format")
        .map(|(_, value)| value.into_owned());
    let allowed = if ndjson {
        "csv or ndjson"
    } else {
        "json or csv"
    };
    match asked.as_deref() {
        Some("json") => Ok(Format::Json),
        Some("csv") => Ok(Format::Csv),
        Some("ndjson") if ndjson => Ok(Format::Ndjson),
        Some(other) => Err(ApiError::BadRequest(format!(
            "format must be {allowed}, not {other:?}"
        ))),
        None => {
            let accept = headers
                .get_all(header::ACCEPT)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect::<Vec<_>>()
                .join(",");
            let names = |kind: &str| {
                accept
                    .split(',')
                    .any(|part| part.split(';').next().unwrap_or("").trim() == kind)
            };
            Ok(if names("text/csv") {
                Format::Csv
            } else if ndjson && names("application/x-ndjson") {
                Format::Ndjson
            } else {
                Format::Json
            })
        }
    }
}

/// Rows of CSV being written.
#[derive(Debug, Default)]
pub struct Rows {
    out: Vec<u8>,
    /// Whether the row being written has a cell yet.
    started: bool,
}

impl Rows {
    pub fn new() -> Rows {
        Rows::default()
    }

    /// A row of text cells: the header, say.
    pub fn header(mut self, names: &[&str]) -> Rows {
        for name in names {
            self.text(name);
        }
        self.end();
        self
    }

    fn comma(&mut self) {
        if self.started {
            self.out.push(b',');
        }
        self.started = true;
    }

    /// A cell of text someone typed: quoted where RFC 4180 says, and one that a
    /// spreadsheet would run as a formula (starting `=`, `+`, `-`, `@`, a tab or a carriage
    /// return) is prefixed with `'` and quoted, as OWASP's CSV-injection advice says.
    pub fn text(&mut self, text: &str) {
        self.comma();
        let formula = text.starts_with(['=', '+', '-', '@', '\t', '\r']);
        if !formula && !text.contains([',', '"', '\n', '\r']) {
            self.out.extend_from_slice(text.as_bytes());
            return;
        }
        self.out.push(b'"');
        if formula {
            self.out.push(b'\'');
        }
        for part in text.split_inclusive('"') {
            self.out.extend_from_slice(part.as_bytes());
            if part.ends_with('"') {
                self.out.push(b'"');
            }
        }
        self.out.push(b'"');
    }

    /// A cell the server wrote (a number, a time): nothing in it needs quoting.
    pub fn value(&mut self, value: impl std::fmt::Display) {
        use std::io::Write as _;
        self.comma();
        let _ = write!(self.out, "{value}");
    }

    /// An empty cell (a null).
    pub fn empty(&mut self) {
        self.comma();
    }

    /// Ends the row (CRLF, as RFC 4180 has it).
    pub fn end(&mut self) {
        self.out.extend_from_slice(b"\r\n");
        self.started = false;
    }

    /// The bytes written so far, leaving it empty.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// The rows as a `200` answer.
    pub fn into_response(self) -> Response {
        csv_response(Response::new(self.out.into()))
    }
}

/// `response` as a `200` CSV answer.
pub fn csv_response(mut response: Response) -> Response {
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    response
}

/// The columns of a pour.
pub const POUR_COLUMNS: &[&str] = &[
    "id",
    "venue",
    "tapId",
    "volume",
    "type",
    "timestamp",
    "localTime",
    "timezone",
    "flags",
];

/// The time zone of each venue, looked up once.
pub type Zones = std::collections::HashMap<Arc<str>, chrono_tz::Tz>;

/// A pour as a row: its time in UTC and on its venue's clock; its flags joined by `;`.
pub fn pour_row(rows: &mut Rows, pour: &Pour, zone: chrono_tz::Tz) {
    rows.value(pour.id);
    rows.text(&pour.venue);
    rows.value(pour.tap_id);
    rows.value(pour.volume);
    rows.text(&pour.glass);
    rows.value(pour.timestamp);
    match chrono::DateTime::from_timestamp_millis(pour.timestamp.millis()) {
        Some(at) => rows.value(at.with_timezone(&zone).format("%Y-%m-%d %H:%M:%S%.3f")),
        None => rows.empty(),
    }
    rows.value(zone.name());
    let mut flags = String::new();
    for flag in pour.flags.iter() {
        if !flags.is_empty() {
            flags.push(';');
        }
        flags.push_str(flag.name());
    }
    rows.value(flags);
    rows.end();
}

/// The glasses that `tallies` name, as columns: the catalogue's order, then
/// `unclassified`, then glasses it no longer defines, by name.
fn glass_columns<'a>(
    catalogue: &Catalogue,
    tallies: impl Iterator<Item = &'a [TypeTally]>,
) -> Vec<Arc<str>> {
    let mut names: Vec<Arc<str>> = Vec::new();
    for tally in tallies.flatten() {
        if !names.contains(&tally.glass) {
            names.push(tally.glass.clone());
        }
    }
    let rank = |name: &str| match catalogue.position(name) {
        Some(at) => (0, at),
        None if name == UNCLASSIFIED => (1, 0),
        None => (2, 0),
    };
    names.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.cmp(b)));
    names
}

/// A header cell per glass: its pours, then its volume.
fn glass_header(rows: &mut Rows, glasses: &[Arc<str>]) {
    for glass in glasses {
        rows.text(&format!("pours:{glass}"));
        rows.text(&format!("volumeMl:{glass}"));
    }
}

fn glass_cells(rows: &mut Rows, glasses: &[Arc<str>], tallies: &[TypeTally]) {
    for glass in glasses {
        match tallies.iter().find(|t| t.glass == *glass) {
            Some(tally) => {
                rows.value(tally.pours);
                rows.value(tally.volume_ml);
            }
            None => {
                rows.value(0);
                rows.value(0);
            }
        }
    }
}

/// A history as a table: a row per bucket and group (`start`, `end`, the group's
/// columns), its totals, a column per flag, and pours and volume per glass.
pub fn history(document: &Document, catalogue: &Catalogue) -> Rows {
    use crate::history::By;
    let groups = || document.buckets.iter().flat_map(|b| &b.groups);
    let glasses = glass_columns(catalogue, groups().map(|g| g.counts.by_type.as_slice()));
    let mut rows = Rows::new();
    for name in ["start", "end"] {
        rows.text(name);
    }
    let group_columns: &[&str] = match document.by {
        By::Beverage => &["beverage"],
        By::Tap => &["venue", "tapId"],
        By::Glass => &["type"],
    };
    for name in group_columns
        .iter()
        .chain(&["pours", "volumeMl", "flaggedPours"])
    {
        rows.text(name);
    }
    for flag in Flag::ALL {
        rows.text(flag.name());
    }
    glass_header(&mut rows, &glasses);
    rows.end();
    for bucket in &document.buckets {
        for group in &bucket.groups {
            rows.value(bucket.start);
            rows.value(bucket.end);
            match document.by {
                By::Beverage => match group.beverage.as_ref().and_then(Option::as_deref) {
                    Some(beverage) => rows.text(beverage),
                    None => rows.empty(),
                },
                By::Tap => {
                    rows.text(group.venue.as_deref().unwrap_or(""));
                    match group.tap_id {
                        Some(tap) => rows.value(tap),
                        None => rows.empty(),
                    }
                }
                By::Glass => rows.text(group.glass.as_deref().unwrap_or("")),
            }
            counts(&mut rows, &group.counts, &glasses);
            rows.end();
        }
    }
    rows
}

fn counts(rows: &mut Rows, counts: &Counts, glasses: &[Arc<str>]) {
    rows.value(counts.pours);
    rows.value(counts.volume_ml);
    rows.value(counts.flagged_pours);
    for flag in Flag::ALL {
        rows.value(counts.flagged.get(flag));
    }
    glass_cells(rows, glasses, &counts.by_type);
}

/// The columns of a keg, before its pours and volume per glass.
pub const KEG_COLUMNS: &[&str] = &[
    "id",
    "venue",
    "tapId",
    "beverage",
    "status",
    "sizeMl",
    "startMl",
    "pouredMl",
    "spilledMl",
    "remainingMl",
    "leftMl",
    "leftMeasured",
    "unaccountedMl",
    "yieldPct",
    "pours",
    "flaggedPours",
    "tappedAt",
    "finishedAt",
    "daysOnTap",
];

/// Kegs as a table: a row per keg, its yield, and its pours and volume per glass.
pub fn kegs(kegs: &[KegView], catalogue: &Catalogue) -> Rows {
    let glasses = glass_columns(catalogue, kegs.iter().map(|k| k.yields.by_type.as_slice()));
    let mut rows = Rows::new();
    for name in KEG_COLUMNS {
        rows.text(name);
    }
    glass_header(&mut rows, &glasses);
    rows.end();
    for keg in kegs {
        let given = &keg.yields;
        rows.value(keg.id);
        rows.text(&keg.venue);
        rows.value(keg.tap_id);
        rows.text(&keg.beverage);
        rows.value(keg.status);
        for ml in [
            keg.size_ml,
            keg.start_ml,
            given.poured_ml,
            given.spilled_ml,
            keg.remaining_ml,
        ] {
            rows.value(ml);
        }
        optional(&mut rows, given.left_ml);
        rows.value(given.left_measured);
        optional(&mut rows, given.unaccounted_ml);
        rows.value(given.yield_pct);
        rows.value(given.pours);
        rows.value(given.flagged_pours);
        rows.value(keg.tapped_at);
        optional(&mut rows, keg.finished_at);
        optional(&mut rows, given.days_on_tap);
        glass_cells(&mut rows, &glasses, &given.by_type);
        rows.end();
    }
    rows
}

/// A variance as CSV: a row per bucket and group (`hour` empty but for hour buckets).
pub fn variance(document: &crate::variance::Document) -> Rows {
    use crate::variance::By;
    let mut rows = Rows::new();
    for name in ["date", "hour"] {
        rows.text(name);
    }
    let group_columns: &[&str] = match document.by {
        By::Beverage => &["beverage"],
        By::Tap => &["venue", "tapId", "beverage"],
    };
    for name in group_columns.iter().chain(&[
        "pouredMl",
        "soldMl",
        "varianceMl",
        "variancePercent",
        "overGoal",
    ]) {
        rows.text(name);
    }
    rows.end();
    for bucket in &document.buckets {
        for line in &bucket.groups {
            rows.value(bucket.date);
            match &bucket.hour {
                Some(hour) => rows.value(hour),
                None => rows.empty(),
            }
            if document.by == By::Tap {
                rows.text(line.venue.as_deref().unwrap_or(""));
                optional(&mut rows, line.tap_id.flatten());
            }
            rows.text(
                line.beverage
                    .as_ref()
                    .and_then(Option::as_deref)
                    .unwrap_or(""),
            );
            rows.value(line.poured_ml);
            rows.value(line.sold_ml);
            rows.value(line.variance_ml);
            optional(&mut rows, line.variance_percent);
            rows.value(line.over_goal);
            rows.end();
        }
    }
    rows
}

/// A cell that may be null (empty).
fn optional(rows: &mut Rows, value: Option<impl std::fmt::Display>) {
    match value {
        Some(value) => rows.value(value),
        None => rows.empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(texts: &[&str]) -> String {
        let mut rows = Rows::new();
        for text in texts {
            rows.text(text);
        }
        rows.end();
        String::from_utf8(rows.take()).unwrap()
    }

    #[test]
    fn cells_are_quoted_as_rfc_4180_says_and_formulas_are_neutralised() {
        assert_eq!(
            cells(&["Helles", "a,b", "say \"hi\""]),
            "Helles,\"a,b\",\"say \"\"hi\"\"\"\r\n"
        );
        assert_eq!(
            cells(&["=HYPERLINK(\"x\")", "+1", "-2", "@SUM(A1)", "\tx"]),
            "\"'=HYPERLINK(\"\"x\"\")\",\"'+1\",\"'-2\",\"'@SUM(A1)\",\"'\tx\"\r\n"
        );
        assert_eq!(cells(&["line\nbreak", ""]), "\"line\nbreak\",\r\n");
    }

    #[test]
    fn the_query_wins_over_accept() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/html, text/csv;q=0.9"),
        );
        assert_eq!(format(&headers, "", false).unwrap(), Format::Csv);
        assert_eq!(
            format(&headers, "format=json", false).unwrap(),
            Format::Json
        );
        assert!(format(&headers, "format=ndjson", false).is_err());
        assert_eq!(
            format(&headers, "format=ndjson", true).unwrap(),
            Format::Ndjson
        );
        assert_eq!(format(&HeaderMap::new(), "", true).unwrap(), Format::Csv);
        assert!(format(&HeaderMap::new(), "format=json", true).is_err());
    }
}
