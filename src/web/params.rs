//! Request parameters (query string and path ids) for both web edges: typed values out, or a
//! `ParamError` naming the parameter (mapped in `crate::web::error`: 422 `VALIDATION_ERROR`, or the
//! `INVALID_*_ID` code of an id). Rules that belong to a module (what a trace filter may hold, the
//! trace window) live in that module; this file only reads the values.

use std::collections::HashMap;

use actix_web::HttpRequest;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::store::event_logs::EventFilter;
use crate::tracer::live::LiveFilter;
use crate::tracer::service::{
    is_storable_time, TraceStart, TraceWindow, DEFAULT_TRACE_HOURS, MAX_TRACE_HOURS,
};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error("malformed query string: {0}")]
    Malformed(String),
    #[error("{name} must be an integer, got {raw:?}")]
    NotInteger { name: String, raw: String },
    #[error("{name} must be between {min} and {max}")]
    OutOfRange { name: String, min: i64, max: i64 },
    #[error("{name} must be an RFC 3339 timestamp between years 1 and 9999, got {raw:?}")]
    NotTimestamp { name: &'static str, raw: String },
    #[error("{name} must be true or false, got {raw:?}")]
    NotBool { name: &'static str, raw: String },
    #[error("{name} must be {expected}")]
    NotOneOf {
        name: &'static str,
        expected: &'static str,
    },
    #[error("{} must be a UUID", .0.name())]
    BadId(IdParam),
}

/// Ids taken from a path, each with its own error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdParam {
    EventId,
    WorkflowId,
    SessionId,
}

impl IdParam {
    pub fn name(self) -> &'static str {
        match self {
            IdParam::EventId => "event_id",
            IdParam::WorkflowId => "workflow_id",
            IdParam::SessionId => "session_id",
        }
    }
}

/// A path id that must be a UUID (not trimmed: callers that accept padding trim first).
pub fn uuid(raw: &str, which: IdParam) -> Result<Uuid, ParamError> {
    Uuid::parse_str(raw).map_err(|_| ParamError::BadId(which))
}

/// The states a workflow listing can be filtered by.
const WORKFLOW_STATES: [&str; 4] = ["pending", "processing", "completed", "failed"];

/// A parsed query string.
#[derive(Debug, Clone, Default)]
pub struct Query(HashMap<String, String>);

impl Query {
    pub fn parse(req: &HttpRequest) -> Result<Query, ParamError> {
        Query::from_query_string(req.query_string())
    }

    pub fn from_query_string(qs: &str) -> Result<Query, ParamError> {
        serde_urlencoded::from_str(qs)
            .map(Query)
            .map_err(|e| ParamError::Malformed(e.to_string()))
    }

    /// The value as given (not trimmed; present even when empty).
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The value trimmed; absent or blank is `None`.
    pub fn text(&self, name: &str) -> Option<String> {
        self.0
            .get(name)
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    }

    /// An integer in `min..=max`, `default` when absent.
    pub fn int(&self, name: &str, default: i64, min: i64, max: i64) -> Result<i64, ParamError> {
        let Some(raw) = self.0.get(name) else {
            return Ok(default);
        };
        let value: i64 = raw.parse().map_err(|_| ParamError::NotInteger {
            name: name.to_owned(),
            raw: raw.clone(),
        })?;
        if value < min || value > max {
            return Err(ParamError::OutOfRange {
                name: name.to_owned(),
                min,
                max,
            });
        }
        Ok(value)
    }

    /// An RFC 3339 timestamp both backends can store; absent or blank is `None`.
    pub fn time(&self, name: &'static str) -> Result<Option<DateTime<Utc>>, ParamError> {
        let Some(raw) = self.text(name) else {
            return Ok(None);
        };
        let t = DateTime::parse_from_rfc3339(&raw)
            .map(|t| t.with_timezone(&Utc))
            .ok()
            .filter(is_storable_time);
        match t {
            Some(t) => Ok(Some(t)),
            None => Err(ParamError::NotTimestamp { name, raw }),
        }
    }

    /// `true`/`1` or `false`/`0`; `false` when absent.
    pub fn flag(&self, name: &'static str) -> Result<bool, ParamError> {
        match self.raw(name) {
            None | Some("false") | Some("0") => Ok(false),
            Some("true") | Some("1") => Ok(true),
            Some(other) => Err(ParamError::NotBool {
                name,
                raw: other.to_owned(),
            }),
        }
    }

    /// The event listing's filter (`topic, event_type, status, namespace, session_id,
    /// correlation_id, since, until`); the tracer checks what the values may hold.
    pub fn event_filter(&self) -> Result<EventFilter, ParamError> {
        Ok(EventFilter {
            topic: self.text("topic"),
            event_type: self.text("event_type"),
            status: self.text("status"),
            namespace: self.text("namespace"),
            session_id: self.text("session_id"),
            correlation_id: self.text("correlation_id"),
            since: self.time("since")?,
            until: self.time("until")?,
        })
    }

    /// The live tail's filter: the listing's, without the time range.
    pub fn live_filter(&self) -> LiveFilter {
        LiveFilter {
            topic: self.text("topic"),
            event_type: self.text("event_type"),
            status: self.text("status"),
            namespace: self.text("namespace"),
            session_id: self.text("session_id"),
            correlation_id: self.text("correlation_id"),
        }
    }

    /// A trace's window: `since`/`until`, or the last `hours` (read only without `since`).
    pub fn trace_window(&self) -> Result<TraceWindow, ParamError> {
        let until = self.time("until")?;
        let start = match self.time("since")? {
            Some(t) => TraceStart::Since(t),
            None => TraceStart::LastHours(self.trace_hours()?),
        };
        Ok(TraceWindow { start, until })
    }

    /// `hours` of a trace (1..=2160, default 24).
    pub fn trace_hours(&self) -> Result<i64, ParamError> {
        self.int("hours", DEFAULT_TRACE_HOURS, 1, MAX_TRACE_HOURS)
    }

    /// The optional `state` filter of a workflow listing.
    pub fn workflow_state(&self) -> Result<Option<&str>, ParamError> {
        match self
            .0
            .get("state")
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
        {
            Some(s) if !WORKFLOW_STATES.contains(&s) => Err(ParamError::NotOneOf {
                name: "state",
                expected: "pending, processing, completed or failed",
            }),
            st => Ok(st),
        }
    }
}

impl ParamError {
    /// The parameter the error names.
    pub fn param(&self) -> &str {
        match self {
            ParamError::Malformed(_) => "query",
            ParamError::NotInteger { name, .. } | ParamError::OutOfRange { name, .. } => name,
            ParamError::NotTimestamp { name, .. }
            | ParamError::NotBool { name, .. }
            | ParamError::NotOneOf { name, .. } => name,
            ParamError::BadId(id) => id.name(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Query {
        Query::from_query_string(s).unwrap()
    }

    #[test]
    fn reads_typed_values_and_names_the_parameter() {
        let query = q("limit=7&bad=x&big=9999&since=2024-01-01T00:00:00Z&wait=1&topic=%20t%20");
        assert_eq!(query.int("limit", 50, 1, 500), Ok(7));
        assert_eq!(query.int("absent", 50, 1, 500), Ok(50));
        let e = query.int("bad", 50, 1, 500).unwrap_err();
        assert_eq!(
            (e.param(), e.to_string().as_str()),
            ("bad", "bad must be an integer, got \"x\"")
        );
        let e = query.int("big", 50, 1, 500).unwrap_err();
        assert_eq!(e.to_string(), "big must be between 1 and 500");
        assert!(query.time("since").unwrap().is_some());
        assert_eq!(query.flag("wait"), Ok(true));
        assert_eq!(query.text("topic").as_deref(), Some("t"));
        let e = q("until=10000-01-01T00:00:00Z").time("until").unwrap_err();
        assert_eq!(e.param(), "until");
        let e = q("wait=maybe").flag("wait").unwrap_err();
        assert_eq!(e.to_string(), "wait must be true or false, got \"maybe\"");
        assert_eq!(
            q("state=done").workflow_state().unwrap_err().param(),
            "state"
        );
        assert_eq!(
            uuid("nope", IdParam::WorkflowId).unwrap_err().to_string(),
            "workflow_id must be a UUID"
        );
    }

    #[test]
    fn hours_are_read_only_without_since() {
        let w = q("since=2024-01-01T00:00:00Z&hours=abc")
            .trace_window()
            .unwrap();
        assert!(matches!(w.start, TraceStart::Since(_)));
        assert_eq!(q("hours=abc").trace_window().unwrap_err().param(), "hours");
        assert_eq!(
            q("").trace_window().unwrap().start,
            TraceStart::LastHours(DEFAULT_TRACE_HOURS)
        );
    }
}
