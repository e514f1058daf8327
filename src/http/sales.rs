//! Poured versus sold: `POST /api/sales` (a till's export in), `GET /api/sales/items` and
//! `PUT|DELETE /api/sales/items/{item}` (what each item pours), `GET /api/variance`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use warp::http::{HeaderMap, StatusCode};
use warp::reply::Response;

use super::csv::{self as csv_out, Format as Out};
use super::error::{ApiError, ErrorBody};
use super::history::{date, days};
use super::reply::json_with;
use super::request::BodyHeaders;
use super::scope::{Scope, venue_param};
use super::state::AppState;
use crate::auth::Identity;
use crate::decide::KegDone;
use crate::keg::{KegError, KegOp};
use crate::pour::Timestamp;
use crate::sales::{self, Format, Skipped};
use crate::variance::{self, Bucket, By, Counting, ItemView, MAX_DAYS, Query, Serving};

/// The largest sales file taken at once (about 150,000 lines of the generic layout).
pub const SALES_LIMIT: u64 = 16 * 1024 * 1024;

/// What an import did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Imported {
    pub format: Format,
    /// Sold lines read from the file.
    pub lines: usize,
    /// Of those, new: now counted.
    pub imported: u64,
    /// Of those, imported before (the same file again, or an overlapping export): not
    /// counted twice.
    pub duplicates: u64,
    /// Lines left out (voids, refunds, no quantity), the first 100.
    pub skipped: Vec<Skipped>,
    pub skipped_total: usize,
    /// Items of this file that map to no beverage yet (`PUT /api/sales/items/{item}`).
    pub unmapped_items: Vec<String>,
}

/// Import sales from the till
///
/// The body is the till's CSV export. `format=generic` (`time,item,quantity`, optionally
/// `venue` and `id`; a time without an offset is the venue's local time), `toast`
/// (Toast's `ItemSelectionDetails.csv`) or `square` (Square's item sales export). All or
/// nothing: a file with a line that cannot be read stores nothing and lists the bad lines.
/// Idempotent: a line imported before (the same file again, or two exports that overlap)
/// is counted once. Voids and refunds are left out and listed.
#[utoipa::path(
    post, path = "/api/sales", tag = "sales",
    params(
        ("format" = Format, Query, description = "The file's layout: generic, toast or square"),
        ("venue" = Option<String>, Query, description = "The venue it is for (default: the token's, else the default venue)"),
    ),
    request_body(content = String, content_type = "text/csv", description = "The till's export"),
    responses(
        (status = 200, description = "What was imported", body = Imported),
        (status = 400, description = "No or unknown format, or the body is not CSV", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Only admin tokens import sales, and a token confined to a venue only its own", body = ErrorBody),
        (status = 404, description = "No such venue", body = ErrorBody),
        (status = 413, description = "The body is over 16 MiB: import it in parts", body = ErrorBody),
        (status = 422, description = "A required column is missing or lines cannot be read: `lines` lists them (line numbers of the file, the header is line 1)", body = ErrorBody),
        (status = 503, description = "The store cannot write", body = ErrorBody),
    )
)]
pub async fn import(
    state: &AppState,
    raw_query: &str,
    content_type: Option<&str>,
    body: Result<bytes::Bytes, ApiError>,
    who: &Option<Identity>,
) -> Result<Response, ApiError> {
    let asked = form_urlencoded::parse(raw_query.as_bytes())
        .find(|(key, _)| key == "format")
        .map(|(_, value)| value.into_owned());
    let format = match asked.as_deref() {
        Some(text) => Format::parse(text).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "format must be generic, toast or square, not {text:?}"
            ))
        })?,
        None => {
            return Err(ApiError::BadRequest(
                "format is required: generic, toast or square".into(),
            ));
        }
    };
    if let Some(content_type) = content_type {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        let csv = ["text/csv", "application/csv", "text/plain"]
            .iter()
            .any(|t| essence.eq_ignore_ascii_case(t));
        if !csv {
            return Err(ApiError::BadRequest(format!(
                "Content-Type must be text/csv, not {essence:?}"
            )));
        }
    }
    let scope = Scope::of(state, who);
    let venue = scope.write(state, venue_param(raw_query).as_deref())?;
    let body = body?;
    let place = (venue.clone(), zone_of(state, &venue));
    // Every venue a generic file's `venue` column names, resolved now: reading runs on a
    // thread of its own.
    let places: Vec<(Arc<str>, chrono_tz::Tz)> = state.bar.venues(|v| {
        v.all_rules()
            .map(|rules| (rules.id.clone(), rules.clock.zone))
            .collect()
    });
    let confined = scope.confined().cloned();
    let read = tokio::task::spawn_blocking(move || {
        let named = |name: &str| match places.iter().find(|(id, _)| &**id == name) {
            None => Err(format!("no venue {name:?}")),
            Some(_) if confined.as_deref().is_some_and(|own| own != name) => Err(format!(
                "venue {name:?}: this token imports for venue {:?} only",
                confined.as_deref().unwrap_or_default()
            )),
            Some(found) => Ok(found.clone()),
        };
        sales::read(format, &body, &place, &named)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("reading a sales file: {e}")))?
    .map_err(|refused| ApiError::BadLines {
        lines: refused.lines,
        total: refused.total,
    })?;
    let lines = read.sales.len();
    let imported = if lines == 0 {
        0
    } else {
        let op = variance::sales_op(&read.sales, &state.pouring.default_venue, Timestamp::now());
        match state.store.keg(op, None).await? {
            Ok(KegDone::Applied(new) | KegDone::Replayed(new)) => new,
            Ok(KegDone::Conflict) | Err(KegError::NothingNew) => 0,
            Err(e @ KegError::NoVenue(_)) => return Err(ApiError::NotFound(e.to_string())),
            Err(e) => return Err(ApiError::Unprocessable(e.to_string())),
        }
    };
    let mut unmapped_items: Vec<String> = {
        let in_file: std::collections::HashSet<&str> =
            read.sales.iter().map(|s| s.item.as_str()).collect();
        state
            .bar
            .hold()
            .sales_items(None, Some(false))
            .into_iter()
            .filter(|item| read.sales.iter().any(|s| s.venue == item.venue))
            .filter(|item| in_file.contains(&*item.item))
            .map(|item| item.item.to_string())
            .collect()
    };
    unmapped_items.sort_unstable();
    unmapped_items.dedup();
    if imported > 0 {
        log::info!(
            "sales: {imported} new lines of {lines} imported ({} format) for {venue}",
            format_name(format)
        );
    }
    Ok(json_with(
        &Imported {
            format,
            lines,
            imported,
            duplicates: lines as u64 - imported,
            skipped: read.skipped,
            skipped_total: read.skipped_total,
            unmapped_items,
        },
        StatusCode::OK,
    ))
}

fn format_name(format: Format) -> &'static str {
    match format {
        Format::Generic => "generic",
        Format::Toast => "toast",
        Format::Square => "square",
    }
}

fn zone_of(state: &AppState, venue: &str) -> chrono_tz::Tz {
    state.bar.venues(|v| v.rules(venue).clock.zone)
}

/// The till's items
///
/// Every item the till has sold (or that was mapped), with what it pours and how many
/// were sold. With `mapped=false`, those still to map, each with a keg beverage its name
/// holds, if any, as a suggestion.
#[utoipa::path(
    get, path = "/api/sales/items", tag = "sales",
    params(
        ("venue" = Option<String>, Query, description = "This venue's items (default: every venue's; a token confined to a venue gets its own)"),
        ("mapped" = Option<bool>, Query, description = "Only mapped (true) or unmapped (false) items"),
    ),
    responses(
        (status = 200, description = "The items, by venue and name", body = [ItemView]),
        (status = 400, description = "A bad parameter value", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "This token may not read, or not that venue", body = ErrorBody),
        (status = 404, description = "No such venue", body = ErrorBody),
    )
)]
pub fn items(
    state: &AppState,
    raw_query: &str,
    who: &Option<Identity>,
) -> Result<Response, ApiError> {
    let venue = Scope::of(state, who).read(state, venue_param(raw_query).as_deref())?;
    let mut mapped = None;
    for (key, value) in form_urlencoded::parse(raw_query.as_bytes()) {
        if key == "mapped" {
            mapped = Some(match &*value {
                "true" => true,
                "false" => false,
                _ => {
                    return Err(ApiError::BadRequest(format!(
                        "mapped must be true or false, not {value:?}"
                    )));
                }
            });
        }
    }
    let items = state.bar.hold().sales_items(venue.as_deref(), mapped);
    Ok(json_with(&items, StatusCode::OK))
}

/// What an item pours.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemMapping {
    /// The beverage, as the kegs name it (matched without regard to case); 1 to 100
    /// characters, kept trimmed.
    #[schema(example = "Helles", min_length = 1, max_length = 100)]
    pub beverage: String,
    /// Millilitres of beer one of it pours: a pint 568, a pitcher 1,700, a flight of four
    /// 150 ml tasters 600.
    #[schema(example = 568.0, exclusive_minimum = 0.0, maximum = 20000.0)]
    pub ml: f64,
}

/// Map an item to a beverage
///
/// Says what one of the till's items pours. Its sales, past and future, count in the
/// variance of that beverage from now on.
#[utoipa::path(
    put, path = "/api/sales/items/{item}", tag = "sales",
    params(
        ("item" = String, Path, min_length = 1, max_length = 200, description = "The item as the till names it (percent-encoded)"),
        ("venue" = Option<String>, Query, description = "Its venue (default: the token's, else the default venue)"),
    ),
    request_body = ItemMapping,
    responses(
        (status = 200, description = "The item as mapped", body = ItemView),
        (status = 400, description = "The body is not JSON, or the item not UTF-8 once decoded", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Only admin tokens map items, and a token confined to a venue only its own", body = ErrorBody),
        (status = 404, description = "No such venue", body = ErrorBody),
        (status = 413, description = "The body is over 16 KiB", body = ErrorBody),
        (status = 422, description = "A field is wrong, or the item is not 1 to 200 characters", body = ErrorBody),
        (status = 503, description = "The store cannot write", body = ErrorBody),
    )
)]
pub async fn map_item(
    state: &AppState,
    item: &str,
    raw_query: &str,
    headers: &BodyHeaders,
    body: Result<bytes::Bytes, ApiError>,
    who: &Option<Identity>,
) -> Result<Response, ApiError> {
    headers.require_json()?;
    let body = body?;
    let mapping: ItemMapping = serde_json::from_slice(&body)
        .map_err(|e| ApiError::Unprocessable(format!("invalid item mapping: {e}")))?;
    let serving = Serving {
        // A beverage is named as a keg's is, by the same rule.
        beverage: super::kegs::label("beverage", &serde_json::Value::String(mapping.beverage))?,
        ml: mapping.ml,
    };
    variance::check_serving(&serving).map_err(ApiError::Unprocessable)?;
    set_item(state, item, raw_query, Some(serving), who).await
}

/// Unmap an item
///
/// Its sales count in no variance until it is mapped again.
#[utoipa::path(
    delete, path = "/api/sales/items/{item}", tag = "sales",
    params(
        ("item" = String, Path, min_length = 1, max_length = 200, description = "The item as the till names it (percent-encoded)"),
        ("venue" = Option<String>, Query, description = "Its venue (default: the token's, else the default venue)"),
    ),
    responses(
        (status = 200, description = "The item, unmapped", body = ItemView),
        (status = 400, description = "The item is not UTF-8 once decoded", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Only admin tokens map items, and a token confined to a venue only its own", body = ErrorBody),
        (status = 404, description = "No such venue", body = ErrorBody),
        (status = 422, description = "The item is not 1 to 200 characters", body = ErrorBody),
        (status = 503, description = "The store cannot write", body = ErrorBody),
    )
)]
pub async fn unmap_item(
    state: &AppState,
    item: &str,
    raw_query: &str,
    who: &Option<Identity>,
) -> Result<Response, ApiError> {
    set_item(state, item, raw_query, None, who).await
}

async fn set_item(
    state: &AppState,
    item: &str,
    raw_query: &str,
    serving: Option<Serving>,
    who: &Option<Identity>,
) -> Result<Response, ApiError> {
    let item = percent_decoded(item)?;
    let venue = Scope::of(state, who).write(state, venue_param(raw_query).as_deref())?;
    let op = KegOp::MapItem {
        venue: state.bar.venues(|v| v.stored(&venue)),
        item: item.clone(),
        serving,
        at: Timestamp::now(),
    };
    match state.store.keg(op, None).await? {
        Ok(_) => {}
        Err(e @ KegError::NoVenue(_)) => return Err(ApiError::NotFound(e.to_string())),
        Err(e) => return Err(ApiError::Unprocessable(e.to_string())),
    }
    let view = state
        .bar
        .hold()
        .sales_items(Some(&venue), None)
        .into_iter()
        .find(|view| *view.item == *item)
        .ok_or_else(|| ApiError::Internal(format!("item {item:?} not found once mapped")))?;
    Ok(json_with(&view, StatusCode::OK))
}

fn percent_decoded(segment: &str) -> Result<String, ApiError> {
    let bytes: Vec<u8> = percent_decode(segment.as_bytes());
    let text = String::from_utf8(bytes)
        .map_err(|_| ApiError::BadRequest("the item is not UTF-8 once decoded".into()))?;
    if text.is_empty() || text.chars().count() > sales::MAX_ITEM {
        return Err(ApiError::Unprocessable(format!(
            "an item is 1 to {} characters",
            sales::MAX_ITEM
        )));
    }
    Ok(text)
}

fn percent_decode(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, ..) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// Poured against sold
///
/// For each bucket (the venue's wall-clock hours, business days, or weeks) with a pour or
/// a sale, and each beverage or tap: millilitres poured (on kegs of that beverage),
/// millilitres sold (each item's quantity times its serving), their difference and
/// `variancePercent` = (sold − poured) ÷ poured. Negative is beer lost; positive, beer
/// sold that no meter saw. `overGoal` when further from zero than the goal. The day is the
/// figure to trust: a sale is rung when the check closes, often in a later hour. Items
/// not mapped are listed in `unmapped`, outside `soldMl`.
#[utoipa::path(
    get, path = "/api/variance", tag = "sales",
    params(
        ("venue" = Option<String>, Query, description = "This venue's variance (default: every venue's, each on its own clock; a token confined to a venue gets its own)"),
        ("from" = Option<String>, Query, format = Date, description = "First business day, YYYY-MM-DD (default: 6 days before `to`)"),
        ("to" = Option<String>, Query, format = Date, description = "Last business day, YYYY-MM-DD (default: today's business day)"),
        ("bucket" = Option<Bucket>, Query, description = "hour, day (default) or week"),
        ("by" = Option<By>, Query, description = "beverage (default) or tap"),
        ("goal" = Option<f64>, Query, description = "The goal in per cent (default: the server's, 2)"),
        ("format" = Option<csv_out::ListFormat>, Query, description = "`json` (default) or `csv` (as `Accept: text/csv`): a row per bucket and group"),
    ),
    responses(
        (status = 200, description = "The variance; as CSV with `Accept: text/csv` or `format=csv`",
         content((variance::Document = "application/json"), (String = "text/csv"))),
        (status = 400, description = "A bad parameter value, `from` after `to`, or more than 400 days", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "This token may not read, or not that venue", body = ErrorBody),
        (status = 404, description = "No such venue", body = ErrorBody),
    )
)]
pub async fn variance(
    state: &AppState,
    raw_query: &str,
    who: &Option<Identity>,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let format = csv_out::format(headers, raw_query, false)?;
    let venue = Scope::of(state, who).read(state, venue_param(raw_query).as_deref())?;
    let query = parse(state, venue, raw_query)?;
    let bar = state.bar.clone();
    // A year of hours is tens of milliseconds of counting: on a thread of its own, and a
    // week at a time, so that pours wait at most a moment for the bar's state.
    tokio::task::spawn_blocking(move || {
        let mut counting = Counting::default();
        let span = Counting::span(&query);
        let mut start = span.start;
        while start < span.end {
            let end = (start + WEEK_OF_QUARTERS).min(span.end);
            bar.hold().variance(&query, start..end, &mut counting);
            start = end;
        }
        let document = counting.finish(&query);
        if format == Out::Csv {
            return csv_out::variance(&document).into_response();
        }
        json_with(&document, StatusCode::OK)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("counting a variance: {e}")))
}

/// A week of quarter hours: the part of a variance counted at once.
const WEEK_OF_QUARTERS: i64 = 7 * 96;

fn parse(state: &AppState, venue: Option<Arc<str>>, raw: &str) -> Result<Query, ApiError> {
    let (mut from, mut to, mut bucket, mut by) = (None, None, Bucket::Day, By::Beverage);
    let mut goal = state.pouring.variance_goal;
    for (key, value) in form_urlencoded::parse(raw.as_bytes()) {
        match &*key {
            "from" => from = Some(date("from", &value)?),
            "to" => to = Some(date("to", &value)?),
            "bucket" => {
                bucket = Bucket::parse(&value).ok_or_else(|| {
                    ApiError::BadRequest(format!("bucket must be hour, day or week, not {value:?}"))
                })?
            }
            "by" => {
                by = By::parse(&value).ok_or_else(|| {
                    ApiError::BadRequest(format!("by must be beverage or tap, not {value:?}"))
                })?
            }
            "goal" => {
                goal = value
                    .parse::<f64>()
                    .ok()
                    .filter(|g| g.is_finite() && *g >= 0.0 && *g <= 100.0)
                    .ok_or_else(|| {
                        ApiError::BadRequest(format!(
                            "goal must be a percentage from 0 to 100, not {value:?}"
                        ))
                    })?
            }
            _ => {}
        }
    }
    let (from, to) = days(
        state,
        venue.as_deref(),
        (from, to),
        |to| to - chrono::Duration::days(6),
        ("variance", MAX_DAYS),
    )?;
    Ok(Query {
        venue,
        from,
        to,
        bucket,
        by,
        goal_percent: goal,
    })
}
