//! Which venues a request sees and acts in. A token confined to a venue (a scoped reader or
//! admin, or any tap token) sees only that venue, whatever its query asks: things of other
//! venues are not there for it (404 for an id, left out of lists), and a write that names
//! another venue is refused (403). Every other caller sees every venue, or those its
//! `venue` query names.

use std::sync::Arc;

use super::error::ApiError;
use super::state::AppState;
use crate::auth::Identity;

/// The venue a request is confined to, if any.
#[derive(Debug, Clone)]
pub struct Scope {
    confined: Option<Arc<str>>,
    default: Arc<str>,
}

impl Scope {
    /// The scope of whoever sent a request.
    pub fn of(state: &AppState, who: &Option<Identity>) -> Scope {
        let default = state.pouring.default_venue.clone();
        let confined = who.as_ref().and_then(|who| who.venue(&default)).cloned();
        Scope { confined, default }
    }

    /// Everything, for callers inside the server.
    pub fn chain(state: &AppState) -> Scope {
        Scope {
            confined: None,
            default: state.pouring.default_venue.clone(),
        }
    }

    /// The venue it is confined to, if any.
    pub fn confined(&self) -> Option<&Arc<str>> {
        self.confined.as_ref()
    }

    /// Whether it sees things of `venue`.
    pub fn sees(&self, venue: &str) -> bool {
        self.confined.as_deref().is_none_or(|own| own == venue)
    }

    /// Whether it sees a thing of `venue` (none: the chain's, which every scope sees).
    pub fn sees_any(&self, venue: Option<&str>) -> bool {
        venue.is_none_or(|venue| self.sees(venue))
    }

    /// The one venue a read covers, from its `venue` query value: none for every venue.
    /// A confined scope covers its own venue, and refuses to be widened (403).
    pub fn read(
        &self,
        state: &AppState,
        asked: Option<&str>,
    ) -> Result<Option<Arc<str>>, ApiError> {
        match (&self.confined, asked) {
            (Some(own), None) => Ok(Some(own.clone())),
            (Some(own), Some(asked)) if **own == *asked => Ok(Some(own.clone())),
            (Some(own), Some(_)) => Err(ApiError::Forbidden(format!(
                "this token sees venue {own:?} only"
            ))),
            (None, None) => Ok(None),
            (None, Some(asked)) => existing(state, asked).map(Some),
        }
    }

    /// The venues a subscription covers, from its `venue` query values: none for every
    /// venue.
    pub fn read_many(
        &self,
        state: &AppState,
        asked: &[String],
    ) -> Result<Option<Vec<Arc<str>>>, ApiError> {
        if asked.is_empty() {
            return Ok(self.confined.clone().map(|own| vec![own]));
        }
        let mut venues = Vec::with_capacity(asked.len());
        for venue in asked {
            if let Some(venue) = self.read(state, Some(venue))? {
                venues.push(venue);
            }
        }
        venues.sort_unstable();
        venues.dedup();
        Ok(Some(venues))
    }

    /// The venue a write acts in: the one it names, else its own, else the default venue.
    /// Naming another venue than its own is refused (403); one that does not exist is not
    /// found (404).
    pub fn write(&self, state: &AppState, named: Option<&str>) -> Result<Arc<str>, ApiError> {
        let venue = match (&self.confined, named) {
            (Some(own), Some(named)) if **own != *named => {
                return Err(ApiError::Forbidden(format!(
                    "this token acts in venue {own:?} only, not {named:?}"
                )));
            }
            (Some(own), _) => own.clone(),
            (None, Some(named)) => named.into(),
            (None, None) => self.default.clone(),
        };
        existing(state, &venue)
    }

    /// `found` if it sees it (a thing of `venue`), else `missing` (the thing is not there
    /// for this scope).
    pub fn found<T>(
        &self,
        venue: Option<&str>,
        found: T,
        missing: ApiError,
    ) -> Result<T, ApiError> {
        match self.sees_any(venue) {
            true => Ok(found),
            false => Err(missing),
        }
    }
}

/// The shared id of venue `id`, or 404.
fn existing(state: &AppState, id: &str) -> Result<Arc<str>, ApiError> {
    state
        .bar
        .venues(|v| v.id(id))
        .ok_or_else(|| ApiError::NotFound(format!("no venue {id:?}")))
}

/// The `venue` value of a query, if it has one (the last, if it has several).
pub fn venue_param(raw_query: &str) -> Option<String> {
    form_urlencoded::parse(raw_query.as_bytes())
        .filter(|(key, _)| key == "venue")
        .map(|(_, value)| value.into_owned())
        .last()
}
