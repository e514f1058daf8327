//! `GET /api/history`: a venue's (or the chain's) pours by business day, week or month.

use chrono::NaiveDate;
use warp::http::StatusCode;
use warp::reply::Response;

use super::csv::{self, Format};
use super::error::{ApiError, ErrorBody};
use super::reply::json_with;
use super::scope::{Scope, venue_param};
use super::state::AppState;
use crate::auth::Identity;
use crate::history::{Bucket, By, MAX_DAYS, Query};
use crate::pour::Timestamp;
use crate::report::DayClock;

/// Pours by business day, week or month
///
/// Every bucket from `from` to `to` (whole buckets: a week from its Monday, a month from
/// its first), each with its total and its pours grouped by beverage, tap or glass. Days
/// are the venue's business days on its clock (`businessDayStarts` in its zone); the
/// chain's history adds up each venue's own days. Exact under deletions.
#[utoipa::path(
    get, path = "/api/history", tag = "pours",
    params(
        ("venue" = Option<String>, Query, description = "This venue's history (default: every venue's; a token confined to a venue gets its own)"),
        ("from" = Option<String>, Query, format = Date, description = "First business day, YYYY-MM-DD (default: 30 days, 12 weeks or 12 months back, by bucket)"),
        ("to" = Option<String>, Query, format = Date, description = "Last business day, YYYY-MM-DD (default: today's business day)"),
        ("bucket" = Option<Bucket>, Query, description = "day (default), week or month"),
        ("by" = Option<By>, Query, description = "beverage (default), tap or glass"),
        ("format" = Option<csv::ListFormat>, Query, description = "`json` (default) or `csv` (as `Accept: text/csv`): a row per bucket and group"),
    ),
    responses(
        (status = 200, description = "The history; as CSV with `Accept: text/csv` or `format=csv`",
         content((crate::history::Document = "application/json"), (String = "text/csv"))),
        (status = 400, description = "A bad parameter value, `from` after `to`, or more than 3,660 days", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "This token may not read, or not that venue", body = ErrorBody),
        (status = 404, description = "No such venue", body = ErrorBody),
    )
)]
pub fn history(
    state: &AppState,
    raw_query: &str,
    who: &Option<Identity>,
    headers: &warp::http::HeaderMap,
) -> Result<Response, ApiError> {
    let format = csv::format(headers, raw_query, false)?;
    let venue = Scope::of(state, who).read(state, venue_param(raw_query).as_deref())?;
    let query = parse(state, venue, raw_query)?;
    let document = state.bar.hold().history(&query);
    if format == Format::Csv {
        return Ok(csv::history(&document, &state.pouring.catalogue).into_response());
    }
    Ok(json_with(&document, StatusCode::OK))
}

fn parse(
    state: &AppState,
    venue: Option<std::sync::Arc<str>>,
    raw: &str,
) -> Result<Query, ApiError> {
    let (mut from, mut to, mut bucket, mut by) = (None, None, Bucket::Day, By::Beverage);
    for (key, value) in form_urlencoded::parse(raw.as_bytes()) {
        match &*key {
            "from" => from = Some(date("from", &value)?),
            "to" => to = Some(date("to", &value)?),
            "bucket" => {
                bucket = Bucket::parse(&value).ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "bucket must be day, week or month, not {value:?}"
                    ))
                })?
            }
            "by" => {
                by = By::parse(&value).ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "by must be beverage, tap or glass, not {value:?}"
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
        |to| bucket.default_from(to),
        ("history", MAX_DAYS),
    )?;
    Ok(Query {
        venue,
        from,
        to,
        bucket,
        by,
    })
}

/// The business days a report covers: `to` by default the venue's (none: the default
/// venue's) business day now, `from` by default `default_from(to)`; `from` not after `to`,
/// and at most `most` days (`what` names the report in the message).
pub(super) fn days(
    state: &AppState,
    venue: Option<&str>,
    (from, to): (Option<NaiveDate>, Option<NaiveDate>),
    default_from: impl FnOnce(NaiveDate) -> NaiveDate,
    (what, most): (&str, i64),
) -> Result<(NaiveDate, NaiveDate), ApiError> {
    let to = match to {
        Some(to) => to,
        None => {
            let clock = state.bar.venues(|venues| {
                let rules = venues.rules(venue.unwrap_or(venues.default_id()));
                DayClock {
                    zone: rules.clock.zone,
                    starts: rules.business_day_starts,
                }
            });
            clock.date_of(Timestamp::now())
        }
    };
    let from = from.unwrap_or_else(|| default_from(to));
    if from > to {
        return Err(ApiError::BadRequest(format!(
            "from ({from}) must not be after to ({to})"
        )));
    }
    if (to - from).num_days() >= most {
        return Err(ApiError::BadRequest(format!(
            "a {what} spans at most {most} days; {from} to {to} is {} days",
            (to - from).num_days() + 1
        )));
    }
    Ok((from, to))
}

/// A `YYYY-MM-DD` parameter.
pub(super) fn date(name: &str, value: &str) -> Result<NaiveDate, ApiError> {
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .ok()
        .filter(|d| (1..=9999).contains(&chrono::Datelike::year(d)))
        .ok_or_else(|| {
            ApiError::BadRequest(format!("{name} must be a date YYYY-MM-DD, not {value:?}"))
        })
}
