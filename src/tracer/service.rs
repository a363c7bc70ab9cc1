//! The tracer's read side, shared by the JSON API (`crate::http::tracer`) and the dashboard: checks of
//! caller-given ids and filters, event paging with an opaque keyset cursor, one event by id, trace
//! loading over a time range (cut at `TRACE_LIMIT`; the summary of a cut trace still ends at its
//! latest event), and the search input.
//!
//! Boundary: knows nothing of HTTP, query strings or pages. Callers hand it typed values
//! (`crate::web::params` reads them from a request) and get rows or a `TracerError`, which
//! `crate::web::error` maps to a status and code.

use base64::Engine as _;
use chrono::{DateTime, Datelike, Utc};
use uuid::Uuid;

use super::live::LiveFilter;
use super::query::{self, TraceSummary};
use crate::store::event_logs::{self, EventCursor, EventFilter, EventLogRow, TraceKey};
use crate::store::{Db, StoreError};

/// Most events one trace returns (and computes metrics over).
pub const TRACE_LIMIT: i64 = 10_000;
/// Longest id or filter value a caller may give: nothing we record is longer.
pub const MAX_TEXT_CHARS: usize = 512;
/// A trace without `since` covers the last this many hours…
pub const DEFAULT_TRACE_HOURS: i64 = 24;
/// …at most this many.
pub const MAX_TRACE_HOURS: i64 = 24 * 90;

#[derive(Debug, thiserror::Error)]
pub enum TracerError {
    /// PostgreSQL text cannot hold NUL, so no recorded value contains one.
    #[error("{field} must not contain NUL")]
    Nul { field: &'static str },
    #[error("{field} must be at most {MAX_TEXT_CHARS} characters")]
    TooLong { field: &'static str },
    #[error("since must not be after until")]
    InvertedRange,
    #[error("cursor is not one this API returned")]
    BadCursor,
    #[error("q is required: an id or a file hash")]
    MissingQuery,
    #[error("no event {0} has been recorded")]
    EventNotFound(Uuid),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Years both backends store and order correctly (PostgreSQL rejects others; SQLite's text order
/// breaks past 9999).
pub fn is_storable_time(t: &DateTime<Utc>) -> bool {
    (1..=9999).contains(&t.year())
}

/// An id or filter value from the caller: no NUL, at most `MAX_TEXT_CHARS` characters.
pub fn check_text(field: &'static str, value: &str) -> Result<(), TracerError> {
    if value.contains('\0') {
        return Err(TracerError::Nul { field });
    }
    if value.chars().count() > MAX_TEXT_CHARS {
        return Err(TracerError::TooLong { field });
    }
    Ok(())
}

/// The listing's filter: every value storable, `since` not after `until`.
pub fn check_filter(f: &EventFilter) -> Result<(), TracerError> {
    let texts = [
        ("topic", &f.topic),
        ("event_type", &f.event_type),
        ("status", &f.status),
        ("namespace", &f.namespace),
        ("session_id", &f.session_id),
        ("correlation_id", &f.correlation_id),
    ];
    for (field, value) in texts {
        if let Some(v) = value {
            check_text(field, v)?;
        }
    }
    if let (Some(a), Some(b)) = (f.since, f.until) {
        if a > b {
            return Err(TracerError::InvertedRange);
        }
    }
    Ok(())
}

/// The live tail's filter: every value storable.
pub fn check_live_filter(f: &LiveFilter) -> Result<(), TracerError> {
    check_filter(&EventFilter {
        topic: f.topic.clone(),
        event_type: f.event_type.clone(),
        status: f.status.clone(),
        namespace: f.namespace.clone(),
        session_id: f.session_id.clone(),
        correlation_id: f.correlation_id.clone(),
        since: None,
        until: None,
    })
}

pub fn encode_cursor(c: EventCursor) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
        "{}_{}",
        c.timestamp.timestamp_micros(),
        c.event_id
    ))
}

pub fn decode_cursor(raw: &str) -> Result<EventCursor, TracerError> {
    let bad = || TracerError::BadCursor;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw)
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (micros, id) = text.split_once('_').ok_or_else(bad)?;
    let micros: i64 = micros.parse().map_err(|_| bad())?;
    let timestamp = DateTime::from_timestamp_micros(micros).ok_or_else(bad)?;
    if !is_storable_time(&timestamp) {
        return Err(bad());
    }
    Ok(EventCursor {
        timestamp,
        event_id: Uuid::parse_str(id).map_err(|_| bad())?,
    })
}

/// One page of events, newest first.
#[derive(Debug)]
pub struct EventPage {
    pub rows: Vec<EventLogRow>,
    /// The cursor of the next (older) page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// The page of events matching `filter` after `cursor` (as returned in `next_cursor`).
pub async fn page(
    db: &Db,
    filter: &EventFilter,
    cursor: Option<&str>,
    limit: i64,
) -> Result<EventPage, TracerError> {
    check_filter(filter)?;
    let cursor = match cursor {
        None => None,
        Some(raw) => {
            check_text("cursor", raw)?;
            Some(decode_cursor(raw)?)
        }
    };
    // One extra row tells whether another page exists.
    let mut rows = event_logs::list(db, filter, cursor, limit + 1).await?;
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|r| {
            encode_cursor(EventCursor {
                timestamp: r.event_timestamp.0,
                event_id: r.event_id.0,
            })
        })
    } else {
        None
    };
    Ok(EventPage { rows, next_cursor })
}

/// One recorded event.
pub async fn event(db: &Db, id: Uuid) -> Result<EventLogRow, TracerError> {
    event_logs::get(db, id)
        .await?
        .ok_or(TracerError::EventNotFound(id))
}

/// Where a trace starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceStart {
    Since(DateTime<Utc>),
    /// The last this many hours before `until` (or now).
    LastHours(i64),
}

/// The time range a trace is read over. Without `until` the range is open at the top, so events
/// stamped slightly in the future (producer clock skew) still show, and the latest status is
/// really the latest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceWindow {
    pub start: TraceStart,
    pub until: Option<DateTime<Utc>>,
}

impl TraceWindow {
    /// `(since, until)` as of `now`.
    pub fn resolve(
        self,
        now: DateTime<Utc>,
    ) -> Result<(DateTime<Utc>, Option<DateTime<Utc>>), TracerError> {
        let since = match self.start {
            TraceStart::Since(t) => t,
            TraceStart::LastHours(h) => self.until.unwrap_or(now) - chrono::Duration::hours(h),
        };
        if self.until.is_some_and(|u| since > u) {
            return Err(TracerError::InvertedRange);
        }
        Ok((since, self.until))
    }
}

/// `session` / `correlation`.
pub fn trace_kind(key: TraceKey) -> &'static str {
    match key {
        TraceKey::Session => "session",
        TraceKey::Correlation => "correlation",
    }
}

/// The id a trace follows, as the caller names it.
pub fn trace_id_field(key: TraceKey) -> &'static str {
    match key {
        TraceKey::Session => "session_id",
        TraceKey::Correlation => "correlation_id",
    }
}

/// A loaded trace: its rows (oldest first), range and whether it was cut at `TRACE_LIMIT`.
#[derive(Debug)]
pub struct Trace {
    pub key: TraceKey,
    pub id: String,
    pub since: DateTime<Utc>,
    pub until: Option<DateTime<Utc>>,
    pub rows: Vec<EventLogRow>,
    pub truncated: bool,
    /// The newest matching event, when `truncated` (the rows stop before it).
    pub latest: Option<EventLogRow>,
}

impl Trace {
    /// Summary of the trace; for a truncated trace, end, duration and status come from the latest event.
    pub fn summary(&self) -> TraceSummary {
        let mut s = query::summarize(&self.rows);
        if let Some(last) = &self.latest {
            s.ended_at = Some(last.event_timestamp.0);
            s.status = Some(last.status.clone());
            if let Some(start) = s.started_at {
                s.duration_ms = (last.event_timestamp.0 - start)
                    .num_microseconds()
                    .unwrap_or(i64::MAX) as f64
                    / 1000.0;
            }
        }
        s
    }

    pub fn metrics(&self) -> query::TraceMetrics {
        query::metrics(&self.rows)
    }
}

/// The events of one session (or correlation id) in `window`, oldest first. An unknown id is an
/// empty trace, not an error.
pub async fn load_trace(
    db: &Db,
    key: TraceKey,
    id: String,
    window: TraceWindow,
) -> Result<Trace, TracerError> {
    check_text(trace_id_field(key), &id)?;
    let (since, until) = window.resolve(Utc::now())?;
    let mut rows = event_logs::trace(db, key, &id, since, until, TRACE_LIMIT + 1).await?;
    let truncated = rows.len() as i64 > TRACE_LIMIT;
    rows.truncate(TRACE_LIMIT as usize);
    let latest = if truncated {
        event_logs::trace_latest(db, key, &id, since, until).await?
    } else {
        None
    };
    Ok(Trace {
        key,
        id,
        since,
        until,
        rows,
        truncated,
        latest,
    })
}

/// The search input: required (trimmed), storable.
pub fn search_query(raw: Option<&str>) -> Result<String, TracerError> {
    let q = raw.map(str::trim).unwrap_or("");
    if q.is_empty() {
        return Err(TracerError::MissingQuery);
    }
    check_text("q", q)?;
    Ok(q.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip_and_garbage() {
        let c = EventCursor {
            timestamp: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            event_id: Uuid::from_u128(7),
        };
        assert_eq!(decode_cursor(&encode_cursor(c)).unwrap(), c);
        for bad in ["", "!!", "bm9wZQ", "MTIzX25vdC1hLXV1aWQ"] {
            assert!(decode_cursor(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn texts_and_ranges() {
        assert!(check_text("topic", &"x".repeat(512)).is_ok());
        assert!(matches!(
            check_text("topic", &"x".repeat(513)),
            Err(TracerError::TooLong { field: "topic" })
        ));
        assert!(matches!(
            check_text("q", "a\0b"),
            Err(TracerError::Nul { field: "q" })
        ));
        let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let now = t("2024-05-02T00:00:00Z");
        let w = TraceWindow {
            start: TraceStart::LastHours(24),
            until: None,
        };
        assert_eq!(w.resolve(now).unwrap(), (t("2024-05-01T00:00:00Z"), None));
        let w = TraceWindow {
            start: TraceStart::LastHours(2),
            until: Some(t("2024-01-01T10:00:00Z")),
        };
        assert_eq!(w.resolve(now).unwrap().0, t("2024-01-01T08:00:00Z"));
        let w = TraceWindow {
            start: TraceStart::Since(t("2024-01-02T00:00:00Z")),
            until: Some(t("2024-01-01T00:00:00Z")),
        };
        assert!(matches!(w.resolve(now), Err(TracerError::InvertedRange)));
        assert!(matches!(
            search_query(Some("  ")),
            Err(TracerError::MissingQuery)
        ));
        assert_eq!(search_query(Some(" abc ")).unwrap(), "abc");
    }
}
