//! Sales from the bar's till: a point-of-sale CSV export read into sold lines, each with an
//! identity, so that importing a line twice counts it once.
//!
//! Three layouts ([`Format`]). Column names are matched without regard to case or the
//! spaces around them; columns not named here are ignored.
//! - `generic`: `time,item,quantity`, and optionally `venue` and `id`. `time` is RFC 3339,
//!   or the venue's local time when it has no offset (`2026-12-04 18:30[:00]`).
//! - `toast`: Toast's `ItemSelectionDetails.csv`, columns as the Toast platform guide's
//!   "Data export field reference", section "Item selection data export"
//!   (<https://doc.toasttab.com/doc/platformguide/adminDataExportFieldReference.html>):
//!   `Location, Order Id, Order #, Sent Date, Order Date, ..., Item Selection Id, Item Id,
//!   Master Id, SKU, Menu Item, ..., Qty, Tax, Void?, Deferred, ...`; dates
//!   `MM/DD/YYYY HH:MM[:SS]` (12-hour with AM/PM too) in the restaurant's time. The time
//!   of a line is its `Sent Date` (when the item went to the bar), else its `Order Date`.
//! - `square`: Square's item sales export ("Items detail" CSV from Sales > Transactions >
//!   Export, or Reports > Item Sales): `Date, Time, Time Zone, Category, Item, Qty, Price
//!   Point Name, SKU, ..., Transaction ID, Payment ID, ..., Event Type, Location, ...`;
//!   `Date` `YYYY-MM-DD` (or `MM/DD/YYYY`), `Time` `HH:MM[:SS]` in the location's time.
//!   An item sold at several price points is one item per point (`IPA - Pitcher`), since
//!   each pours a different volume; `Regular` is Square's name for an item's only one.
//!
//! The identity of a line (`Sale::key`), and why importing a line twice is safe:
//! - `toast`: its `Item Selection Id`, which Toast gives each item on a check, once.
//! - `square`: its `Transaction ID`, item and place among that transaction's lines of the
//!   same item. A transaction is one moment, so any export that has it has all its lines.
//! - `generic`: its `id` if the file has one; else its time, item, quantity and place among
//!   the file's lines with the same three. A time is a moment, so two exports that both
//!   cover it hold every line sold then, in the same number.
//!
//! Every identity also names the venue: the same line in two bars is two sales.
//!
//! A void or refund is not a sale and not an error: it is left out and said, with its line.
//! A line with no item, or a time or quantity that cannot be read, is an error; a file
//! with one stores nothing.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{NaiveDate, NaiveDateTime, NaiveTime, TimeZone};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::pour::Timestamp;

/// How many bad lines an answer lists; the rest are counted.
pub const MAX_LISTED: usize = 100;

/// The longest item name kept (a till's are short; a longer one is not an item name).
pub const MAX_ITEM: usize = 200;

/// A till's export layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = SalesFormat)]
pub enum Format {
    Generic,
    Toast,
    Square,
}

impl Format {
    pub fn parse(text: &str) -> Option<Format> {
        match text {
            "generic" => Some(Format::Generic),
            "toast" => Some(Format::Toast),
            "square" => Some(Format::Square),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Format::Generic => "generic",
            Format::Toast => "toast",
            Format::Square => "square",
        }
    }
}

/// A sold line as the log keeps it: (key, when in ms, index of its venue and of its item in
/// the operation's tables, thousandths sold). An array in JSON: an import may hold 100,000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SoldRow(pub u64, pub i64, pub u32, pub u32, pub i64);

/// What a till's item pours: one serving of a beverage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Serving {
    /// Matched to kegs' beverages without regard to case.
    pub beverage: String,
    /// Millilitres of beer one of it pours (a pitcher 1,700; a flight of four tasters 600).
    pub ml: f64,
}

/// A sold line: `milli` thousandths of `item` sold at `at` in `venue`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sale {
    /// What identifies it across imports (see the module's notes).
    pub key: u64,
    pub at: Timestamp,
    pub venue: Arc<str>,
    pub item: String,
    /// The quantity in thousandths (a till may sell half a pitcher).
    pub milli: i64,
}

/// A line left out, and why (a void, a refund).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Skipped {
    pub line: u64,
    pub reason: String,
}

/// A line that could not be read, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BadLine {
    pub line: u64,
    pub message: String,
}

/// A file read.
#[derive(Debug, Default)]
pub struct Read {
    pub sales: Vec<Sale>,
    /// The first [`MAX_LISTED`] lines left out.
    pub skipped: Vec<Skipped>,
    pub skipped_total: usize,
}

/// A file refused: the first [`MAX_LISTED`] bad lines, and how many there were.
#[derive(Debug, Default)]
pub struct Refused {
    pub lines: Vec<BadLine>,
    pub total: usize,
}

impl Refused {
    fn add(&mut self, line: u64, message: String) {
        self.total += 1;
        if self.lines.len() < MAX_LISTED {
            self.lines.push(BadLine { line, message });
        }
    }

    fn whole(message: String) -> Refused {
        let mut refused = Refused::default();
        refused.add(1, message);
        refused
    }
}

/// Where a line's sale was: its venue and that venue's time zone.
pub type Place = (Arc<str>, chrono_tz::Tz);

/// Reads a till's export. Lines go to `place` unless a generic file's `venue` column
/// names another, which `venue` resolves (or says why not).
pub fn read(
    format: Format,
    body: &[u8],
    place: &Place,
    venue: &dyn Fn(&str) -> Result<Place, String>,
) -> Result<Read, Refused> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(body);
    let headers = match reader.headers() {
        Ok(headers) => headers.clone(),
        Err(e) => return Err(Refused::whole(format!("cannot read the header line: {e}"))),
    };
    let columns = Columns::find(format, &headers).map_err(Refused::whole)?;
    let mut read = Read::default();
    let mut refused = Refused::default();
    // The place of each line among those with the same identity so far.
    let mut seen: HashMap<Vec<u8>, u32> = HashMap::new();
    let mut venues: HashMap<String, Place> = HashMap::new();
    let mut record = csv::StringRecord::new();
    loop {
        let line = reader.position().line() + 1;
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                refused.add(line, format!("cannot read the line: {e}"));
                continue;
            }
        }
        let line = record.position().map_or(line, |p| p.line());
        if record.iter().all(str::is_empty) {
            continue;
        }
        let place = match columns.venue.and_then(|i| record.get(i)) {
            Some(name) if !name.is_empty() && name != &*place.0 => match venues.get(name) {
                Some(found) => found.clone(),
                None => match venue(name) {
                    Ok(found) => venues.entry(name.to_owned()).or_insert(found).clone(),
                    Err(why) => {
                        refused.add(line, why);
                        continue;
                    }
                },
            },
            _ => place.clone(),
        };
        match columns.line(format, &record, &place) {
            Ok(Line::Sale {
                at,
                item,
                milli,
                identity,
            }) => {
                let mut id = Vec::with_capacity(64);
                for part in [format.name(), &place.0]
                    .into_iter()
                    .chain(identity.iter().map(String::as_str))
                {
                    id.extend_from_slice(part.as_bytes());
                    id.push(0x1f);
                }
                if columns.counted(format) {
                    let n = seen.entry(id.clone()).or_insert(0);
                    *n += 1;
                    id.extend_from_slice(&n.to_le_bytes());
                }
                let digest = Sha256::digest(&id);
                let mut first = [0u8; 8];
                first.copy_from_slice(&digest[..8]);
                read.sales.push(Sale {
                    key: u64::from_le_bytes(first),
                    at,
                    venue: place.0.clone(),
                    item,
                    milli,
                });
            }
            Ok(Line::Skip(reason)) => {
                read.skipped_total += 1;
                if read.skipped.len() < MAX_LISTED {
                    read.skipped.push(Skipped {
                        line,
                        reason: reason.to_owned(),
                    });
                }
            }
            Err(message) => refused.add(line, message),
        }
    }
    if refused.total > 0 {
        return Err(refused);
    }
    Ok(read)
}

/// What a line says.
enum Line {
    Sale {
        at: Timestamp,
        item: String,
        milli: i64,
        /// What identifies it, but for the format and venue.
        identity: Vec<String>,
    },
    Skip(&'static str),
}

/// Where a format's columns are in a file.
#[derive(Debug, Default)]
struct Columns {
    time: Option<usize>,
    /// Toast: the `Order Date`, when a line has no `Sent Date`. Square: the `Date`.
    date: Option<usize>,
    item: usize,
    quantity: usize,
    id: Option<usize>,
    venue: Option<usize>,
    /// Toast's `Void?`; Square's `Event Type`.
    kind: Option<usize>,
    /// Square's `Price Point Name`.
    point: Option<usize>,
}

impl Columns {
    fn find(format: Format, headers: &csv::StringRecord) -> Result<Columns, String> {
        let names: Vec<String> = headers
            .iter()
            .map(|h| h.trim_start_matches('\u{feff}').trim().to_lowercase())
            .collect();
        let find = |name: &str| names.iter().position(|n| n == name);
        let mut missing = Vec::new();
        let mut need = |name: &'static str| {
            let found = find(name);
            if found.is_none() {
                missing.push(name);
            }
            found.unwrap_or(0)
        };
        let columns = match format {
            Format::Generic => Columns {
                time: Some(need("time")),
                item: need("item"),
                quantity: need("quantity"),
                id: find("id"),
                venue: find("venue"),
                ..Columns::default()
            },
            Format::Toast => {
                let (sent, ordered) = (find("sent date"), find("order date"));
                let columns = Columns {
                    time: sent,
                    date: ordered,
                    item: need("menu item"),
                    quantity: need("qty"),
                    id: Some(need("item selection id")),
                    kind: find("void?"),
                    ..Columns::default()
                };
                if sent.is_none() && ordered.is_none() {
                    missing.push("order date");
                }
                columns
            }
            Format::Square => Columns {
                date: Some(need("date")),
                time: Some(need("time")),
                item: need("item"),
                quantity: need("qty"),
                id: Some(need("transaction id")),
                kind: find("event type"),
                point: find("price point name"),
                ..Columns::default()
            },
        };
        if !missing.is_empty() {
            let found: Vec<&str> = headers.iter().collect();
            return Err(format!(
                "a {} file needs the column{} {}; this one has {}",
                format.name(),
                if missing.len() == 1 { "" } else { "s" },
                missing
                    .iter()
                    .map(|m| format!("{m:?}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                if found.is_empty() {
                    "none".to_owned()
                } else {
                    found.join(", ")
                }
            ));
        }
        Ok(columns)
    }

    /// Whether a line's identity counts its place among lines alike (no unique id).
    fn counted(&self, format: Format) -> bool {
        match format {
            Format::Generic => self.id.is_none(),
            Format::Toast => false,
            Format::Square => true,
        }
    }

    fn line(
        &self,
        format: Format,
        record: &csv::StringRecord,
        place: &Place,
    ) -> Result<Line, String> {
        let get = |i: usize| record.get(i).unwrap_or("");
        let item = get(self.item);
        if item.is_empty() {
            return Err("no item".into());
        }
        let quantity = get(self.quantity);
        let milli = thousandths(quantity)
            .ok_or_else(|| format!("quantity {quantity:?} is not a number"))?;
        let zone = place.1;
        match format {
            Format::Generic => {
                let text = get(self.time.unwrap_or(0));
                let at = generic_time(text, zone).ok_or_else(|| {
                    format!("time {text:?} is neither RFC 3339 nor a local YYYY-MM-DD HH:MM[:SS]")
                })?;
                if milli < 0 {
                    return Ok(Line::Skip("a refund"));
                }
                if milli == 0 {
                    return Ok(Line::Skip("no quantity"));
                }
                let mut identity = Vec::with_capacity(3);
                match self.id.map(get).filter(|id| !id.is_empty()) {
                    Some(id) => identity.push(id.to_owned()),
                    None => {
                        identity.push(at.millis().to_string());
                        identity.push(item.to_owned());
                        identity.push(milli.to_string());
                    }
                }
                Ok(Line::Sale {
                    at,
                    item: trimmed(item)?,
                    milli,
                    identity,
                })
            }
            Format::Toast => {
                let sent = self.time.map(get).filter(|t| !t.is_empty());
                let text = sent.or(self.date.map(get)).unwrap_or("");
                let at = local(us_date_time(text), zone)
                    .ok_or_else(|| format!("date {text:?} is not MM/DD/YYYY HH:MM[:SS] [AM|PM]"))?;
                if self.kind.map(get).is_some_and(truthy) {
                    return Ok(Line::Skip("a void"));
                }
                if milli < 0 {
                    return Ok(Line::Skip("a refund"));
                }
                if milli == 0 {
                    return Ok(Line::Skip("no quantity"));
                }
                let id = get(self.id.unwrap_or(0));
                if id.is_empty() {
                    return Err("no Item Selection Id".into());
                }
                Ok(Line::Sale {
                    at,
                    item: trimmed(item)?,
                    milli,
                    identity: vec![id.to_owned()],
                })
            }
            Format::Square => {
                let (date, time) = (get(self.date.unwrap_or(0)), get(self.time.unwrap_or(0)));
                let at = local(square_date_time(date, time), zone).ok_or_else(|| {
                    format!("date {date:?} and time {time:?} are not YYYY-MM-DD and HH:MM[:SS]")
                })?;
                let refund = self
                    .kind
                    .map(get)
                    .is_some_and(|kind| kind.eq_ignore_ascii_case("refund"));
                if refund || milli < 0 {
                    return Ok(Line::Skip("a refund"));
                }
                if milli == 0 {
                    return Ok(Line::Skip("no quantity"));
                }
                let id = get(self.id.unwrap_or(0));
                if id.is_empty() {
                    return Err("no Transaction ID".into());
                }
                let item = match self.point.map(get) {
                    Some(point) if !point.is_empty() && !point.eq_ignore_ascii_case("regular") => {
                        format!("{item} - {point}")
                    }
                    _ => item.to_owned(),
                };
                Ok(Line::Sale {
                    at,
                    identity: vec![id.to_owned(), item.clone()],
                    item: trimmed(&item)?,
                    milli,
                })
            }
        }
    }
}

fn trimmed(item: &str) -> Result<String, String> {
    if item.chars().count() > MAX_ITEM {
        return Err(format!("an item name is at most {MAX_ITEM} characters"));
    }
    Ok(item.to_owned())
}

fn truthy(text: &str) -> bool {
    ["true", "yes", "y", "1"]
        .iter()
        .any(|t| text.eq_ignore_ascii_case(t))
}

/// A decimal quantity in thousandths (`1`, `-1`, `0.5`, `2.0000`), within a million.
pub fn thousandths(text: &str) -> Option<i64> {
    let value: f64 = text.parse().ok()?;
    (value.is_finite() && value.abs() <= 1e6).then(|| (value * 1000.0).round() as i64)
}

fn generic_time(text: &str, zone: chrono_tz::Tz) -> Option<Timestamp> {
    if let Some(at) = Timestamp::parse(text) {
        return Some(at);
    }
    let naive = [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok());
    local(naive, zone)
}

fn us_date_time(text: &str) -> Option<NaiveDateTime> {
    [
        "%m/%d/%Y %H:%M:%S",
        "%m/%d/%Y %H:%M",
        "%m/%d/%Y %I:%M:%S %p",
        "%m/%d/%Y %I:%M %p",
        "%m/%d/%y %I:%M %p",
        "%m/%d/%y %H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
}

fn square_date_time(date: &str, time: &str) -> Option<NaiveDateTime> {
    let date = ["%Y-%m-%d", "%m/%d/%Y", "%m/%d/%y"]
        .iter()
        .find_map(|f| NaiveDate::parse_from_str(date, f).ok())?;
    let time = ["%H:%M:%S", "%H:%M", "%I:%M:%S %p", "%I:%M %p"]
        .iter()
        .find_map(|f| NaiveTime::parse_from_str(time, f).ok())?;
    Some(date.and_time(time))
}

/// A wall-clock time in `zone`: the first of two when the clocks go back, and the time an
/// hour on when they go forward past it (a till's clock jumps too).
fn local(naive: Option<NaiveDateTime>, zone: chrono_tz::Tz) -> Option<Timestamp> {
    let naive = naive?;
    let at = zone.from_local_datetime(&naive).earliest().or_else(|| {
        zone.from_local_datetime(&(naive + chrono::Duration::hours(1)))
            .earliest()
    })?;
    Some(Timestamp::from_millis(at.timestamp_millis()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn here() -> Place {
        ("main".into(), chrono_tz::America::New_York)
    }

    fn no_venues(name: &str) -> Result<Place, String> {
        Err(format!("no venue {name:?}"))
    }

    fn read_ok(format: Format, text: &str) -> Read {
        read(format, text.as_bytes(), &here(), &no_venues).unwrap()
    }

    #[test]
    fn a_generic_file_reads_offsets_and_local_times() {
        let read = read_ok(
            Format::Generic,
            "time,item,quantity\n2026-12-04T23:30:00Z,Helles Pint,2\n2026-12-04 18:30,IPA Half,0.5\n",
        );
        assert_eq!(read.sales.len(), 2);
        assert_eq!(read.sales[0].milli, 2000);
        assert_eq!(read.sales[1].milli, 500);
        // 18:30 in New York in December is 23:30 UTC.
        assert_eq!(read.sales[0].at, read.sales[1].at);
        assert_eq!(read.sales[1].item, "IPA Half");
    }

    #[test]
    fn lines_alike_in_one_file_are_distinct_and_the_same_in_another() {
        let text = "time,item,quantity\n2026-12-04T20:00:00Z,Pint,1\n2026-12-04T20:00:00Z,Pint,1\n";
        let first = read_ok(Format::Generic, text);
        let again = read_ok(Format::Generic, text);
        assert_ne!(first.sales[0].key, first.sales[1].key);
        let keys = |r: &Read| r.sales.iter().map(|s| s.key).collect::<Vec<_>>();
        assert_eq!(keys(&first), keys(&again));
        let other_place = read(
            Format::Generic,
            text.as_bytes(),
            &("dock".into(), chrono_tz::UTC),
            &no_venues,
        )
        .unwrap();
        assert_ne!(keys(&first), keys(&other_place));
    }

    #[test]
    fn a_bad_line_refuses_the_file_and_says_where() {
        let mut text = String::from("time,item,quantity\n");
        for i in 0..10_000 {
            if i == 7_000 {
                text.push_str("yesterday,Pint,1\n");
            } else {
                text.push_str("2026-12-04T20:00:00Z,Pint,1\n");
            }
        }
        let refused = read(Format::Generic, text.as_bytes(), &here(), &no_venues).unwrap_err();
        assert_eq!(refused.total, 1);
        assert_eq!(refused.lines[0].line, 7_002);
        assert!(
            refused.lines[0].message.contains("yesterday"),
            "{:?}",
            refused.lines
        );
    }

    #[test]
    fn a_missing_column_is_named() {
        let refused = read(Format::Square, b"Date,Item,Qty\n", &here(), &no_venues).unwrap_err();
        let message = &refused.lines[0].message;
        assert!(message.contains("\"time\""), "{message}");
        assert!(message.contains("\"transaction id\""), "{message}");
    }

    /// Toast's `ItemSelectionDetails.csv`: the columns of the Toast platform guide's data
    /// export field reference ("Item selection data export"), in its order.
    const TOAST: &str = "\u{feff}Location,Order Id,Order #,Sent Date,Order Date,Check Id,Server,Table,Dining Area,Service,Dining Option,Item Selection Id,Item Id,Master Id,SKU,PLU,Menu Item,Menu Subgroup(s),Menu Group,Menu,Sales Category,Gross Price,Discnt,Net Price,Qty,Tax,Void?,Deferred,Tax Exempt,Tax Inclusion Option,Dining Option Tax,Tab Name
Dock Street,500000001,101,12/04/2026 18:02:11,12/04/2026 17:58:40,600000001,Sam,12,Bar,Dinner,Dine In,700000001,800000001,900000001,,,Helles Pint,,Draft,Drinks,Beer,7.00,0.00,7.00,1.0000,0.62,False,False,False,EXCLUDED,,
Dock Street,500000001,101,12/04/2026 18:02:11,12/04/2026 17:58:40,600000001,Sam,12,Bar,Dinner,Dine In,700000002,800000002,900000002,,,\"Pitcher, IPA\",,Draft,Drinks,Beer,24.00,0.00,24.00,1.0000,2.13,False,False,False,EXCLUDED,,
Dock Street,500000002,102,,12/04/2026 11:15 PM,600000002,Sam,3,Bar,Late,Dine In,700000003,800000001,900000001,,,Helles Pint,,Draft,Drinks,Beer,7.00,0.00,7.00,2.0000,1.24,False,False,False,EXCLUDED,,
Dock Street,500000003,103,12/04/2026 19:40:00,12/04/2026 19:39:00,600000003,Ana,4,Bar,Dinner,Dine In,700000004,800000001,900000001,,,Helles Pint,,Draft,Drinks,Beer,7.00,0.00,7.00,1.0000,0.62,True,False,False,EXCLUDED,,
";

    #[test]
    fn a_toast_item_selection_export_is_read() {
        let read = read_ok(Format::Toast, TOAST);
        let lines: Vec<(&str, i64, String)> = read
            .sales
            .iter()
            .map(|s| (s.item.as_str(), s.milli, s.at.to_string()))
            .collect();
        assert_eq!(
            lines,
            [
                ("Helles Pint", 1000, "2026-12-04T23:02:11.000Z".to_owned()),
                ("Pitcher, IPA", 1000, "2026-12-04T23:02:11.000Z".to_owned()),
                // No Sent Date: its Order Date, on a 12-hour clock.
                ("Helles Pint", 2000, "2026-12-05T04:15:00.000Z".to_owned()),
            ]
        );
        assert_eq!(
            read.skipped,
            [Skipped {
                line: 5,
                reason: "a void".into()
            }]
        );
        let again = read_ok(Format::Toast, TOAST);
        assert_eq!(read.sales, again.sales);
    }

    /// Square's item sales export ("Items detail" CSV): the header row of exports made in
    /// 2026, as sellers and importers of it show it (35 columns).
    const SQUARE: &str = "Date,Time,Time Zone,Category,Item,Qty,Price Point Name,SKU,Modifiers Applied,Gross Sales,Discounts,Net Sales,Tax,Transaction ID,Payment ID,Device Name,Notes,Details,Event Type,Location,Dining Option,Customer ID,Customer Name,Customer Reference ID,Unit,Count,GTIN,Itemization Type,Commission,Employee,Fulfillment Note,Channel,Token,Card Brand,PAN Suffix
2026-12-04,18:05:09,Eastern Time (US & Canada),Draft,IPA,1.0,Pint,,,$7.00,$0.00,$7.00,$0.62,TX1,PAY1,Bar iPad,,,Payment,Dock Street,,,,,,1,,Physical Good,,Sam,,Register,,Visa,4242
2026-12-04,18:05:09,Eastern Time (US & Canada),Draft,IPA,1.0,Pint,,,$7.00,$0.00,$7.00,$0.62,TX1,PAY1,Bar iPad,,,Payment,Dock Street,,,,,,1,,Physical Good,,Sam,,Register,,Visa,4242
2026-12-04,18:07:00,Eastern Time (US & Canada),Draft,IPA,2.0,Pitcher,,,$48.00,$0.00,$48.00,$4.26,TX2,PAY2,Bar iPad,,,Payment,Dock Street,,,,,,2,,Physical Good,,Sam,,Register,,Visa,4242
2026-12-04,18:09:00,Eastern Time (US & Canada),Draft,Lager,1.0,Regular,,,$6.00,$0.00,$6.00,$0.53,TX3,PAY3,Bar iPad,,,Payment,Dock Street,,,,,,1,,Physical Good,,Sam,,Register,,Visa,4242
2026-12-04,18:30:00,Eastern Time (US & Canada),Draft,Lager,-1.0,Regular,,,-$6.00,$0.00,-$6.00,-$0.53,TX3,PAY3,Bar iPad,,,Refund,Dock Street,,,,,,-1,,Physical Good,,Sam,,Register,,Visa,4242
";

    #[test]
    fn a_square_item_sales_export_is_read() {
        let read = read_ok(Format::Square, SQUARE);
        let items: Vec<(&str, i64)> = read
            .sales
            .iter()
            .map(|s| (s.item.as_str(), s.milli))
            .collect();
        assert_eq!(
            items,
            [
                ("IPA - Pint", 1000),
                ("IPA - Pint", 1000),
                ("IPA - Pitcher", 2000),
                ("Lager", 1000)
            ]
        );
        // Two lines of one transaction are two sales.
        assert_ne!(read.sales[0].key, read.sales[1].key);
        assert_eq!(read.sales[0].at.to_string(), "2026-12-04T23:05:09.000Z");
        assert_eq!(read.skipped_total, 1);
        assert_eq!(read.skipped[0].reason, "a refund");
    }

    #[test]
    fn local_times_across_the_clock_changes_are_read() {
        // New York went back an hour at 02:00 on 2026-11-01: 01:30 happened twice (the
        // first is taken), and forward at 02:00 on 2026-03-08: 02:30 never happened.
        let at = |text: &str| {
            generic_time(text, chrono_tz::America::New_York)
                .unwrap()
                .to_string()
        };
        assert_eq!(at("2026-11-01 01:30"), "2026-11-01T05:30:00.000Z");
        assert_eq!(at("2026-03-08 02:30"), "2026-03-08T07:30:00.000Z");
    }

    #[test]
    fn a_generic_venue_column_places_lines() {
        let venues = |name: &str| match name {
            "dock" => Ok(("dock".into(), chrono_tz::UTC)),
            _ => Err(format!("no venue {name:?}")),
        };
        let text = "time,item,quantity,venue\n2026-12-04 20:00,Pint,1,dock\n2026-12-04 20:00,Pint,1,\n2026-12-04 20:00,Pint,1,nowhere\n";
        let refused = read(Format::Generic, text.as_bytes(), &here(), &venues).unwrap_err();
        assert_eq!(
            refused.lines,
            [BadLine {
                line: 4,
                message: "no venue \"nowhere\"".into()
            }]
        );
        let text = &text[..text.rfind("2026").unwrap()];
        let read = read(Format::Generic, text.as_bytes(), &here(), &venues).unwrap();
        assert_eq!(&*read.sales[0].venue, "dock");
        assert_eq!(read.sales[0].at.to_string(), "2026-12-04T20:00:00.000Z");
        assert_eq!(&*read.sales[1].venue, "main");
    }
}
