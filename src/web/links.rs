//! Every link the service builds: dashboard pages (`dashboard::*`) and JSON API resources
//! (`api::*`), with caller-given parts percent-encoded (`encode`). The JSON API's search results
//! point at dashboard pages, and dashboard pages at API resources, so neither edge owns this.

use std::fmt::Display;

use chrono::{DateTime, Utc};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::tracer::search::Hit;

/// Bytes kept as they are: RFC 3986 "unreserved" (letters, digits, `-._~`); everything else
/// (UTF-8 bytes included) is `%XX`.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encode one path segment or query value.
pub fn encode(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

/// `k=v&…` of the pairs, values encoded (the keys are ours).
pub fn query_string(pairs: &[(&str, String)]) -> String {
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

/// `path` with `?qs` when `qs` is not empty.
fn with_query(path: &str, qs: &str) -> String {
    if qs.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{qs}")
    }
}

/// Where a search hit is: its JSON API resource and its dashboard page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HitLinks {
    pub api: String,
    pub page: String,
}

pub fn hit(hit: &Hit) -> HitLinks {
    let (api, page) = match hit {
        Hit::Workflow { id, .. } => (api::workflow(id), dashboard::workflow(id)),
        Hit::Stamp {
            namespace,
            file_hash,
            ..
        } => (
            api::stamp(file_hash, namespace),
            dashboard::stamps_by_hash(file_hash),
        ),
        Hit::Event { id, .. } => (api::event(id), dashboard::event(id)),
        Hit::Session { id } => (api::session_trace(id), dashboard::session_trace(id)),
        Hit::Correlation { id } => (api::correlation_trace(id), dashboard::correlation_trace(id)),
    };
    HitLinks { api, page }
}

/// Pages of the dashboard.
pub mod dashboard {
    use super::*;

    /// The event listing filtered by one `param` (`topic`, `namespace`, …).
    pub fn events_by(param: &str, value: &str) -> String {
        format!("/dashboard/events?{param}={}", encode(value))
    }

    /// The event listing with a query string (filters) and the `cursor` of the page to show.
    pub fn events_page(qs: &str, cursor: &str) -> String {
        format!(
            "/dashboard/events?{qs}{}cursor={}",
            if qs.is_empty() { "" } else { "&" },
            encode(cursor)
        )
    }

    pub fn event(id: impl Display) -> String {
        format!("/dashboard/events/{id}")
    }

    pub fn session_trace(id: &str) -> String {
        format!("/dashboard/traces/session/{}", encode(id))
    }

    /// A session's trace from `since` on (a workflow's trace starts just before the workflow).
    pub fn session_trace_since(id: &str, since: DateTime<Utc>) -> String {
        format!(
            "{}?since={}",
            session_trace(id),
            encode(&since.to_rfc3339())
        )
    }

    pub fn correlation_trace(id: &str) -> String {
        format!("/dashboard/traces/correlation/{}", encode(id))
    }

    pub fn workflow(id: impl Display) -> String {
        format!("/dashboard/workflows/{id}")
    }

    pub fn workflows_in_state(state: &str) -> String {
        format!("/dashboard/workflows?state={}", encode(state))
    }

    pub fn stamps_by_hash(file_hash: &str) -> String {
        format!("/dashboard/stamps?hash={}", encode(file_hash))
    }

    pub fn dlq_topic(topic: &str) -> String {
        format!("/dashboard/dlq?topic={}", encode(topic))
    }

    /// The id of a namespace's row on the namespaces page.
    pub fn namespace_anchor(namespace: &str) -> String {
        format!("ns-{}", encode(namespace))
    }

    pub fn namespace(namespace: &str) -> String {
        format!("/dashboard/namespaces#{}", namespace_anchor(namespace))
    }
}

/// Resources of the JSON API.
pub mod api {
    use super::*;

    pub fn workflow(id: impl Display) -> String {
        format!("/api/v1/workflows/{id}")
    }

    pub fn stamp(file_hash: &str, namespace: &str) -> String {
        format!(
            "/api/v1/metadata-stamping/stamp/{}?namespace={}",
            encode(file_hash),
            encode(namespace)
        )
    }

    pub fn event(id: impl Display) -> String {
        format!("/api/v1/events/{id}")
    }

    /// The live tail (SSE) with a query string of filters.
    pub fn event_stream(qs: &str) -> String {
        format!("/api/v1/events/stream?{qs}")
    }

    pub fn session_trace(id: &str) -> String {
        format!("/api/v1/traces/sessions/{}", encode(id))
    }

    pub fn correlation_trace(id: &str) -> String {
        format!("/api/v1/traces/correlation/{}", encode(id))
    }

    /// A trace resource with the query string the dashboard page was given.
    pub fn trace_with_query(trace: &str, qs: &str) -> String {
        with_query(trace, qs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_escapes_everything_but_unreserved() {
        assert_eq!(encode("a b/<c>&d"), "a%20b%2F%3Cc%3E%26d");
        assert_eq!(encode("s-1_x.y~"), "s-1_x.y~");
        assert_eq!(encode("é?#"), "%C3%A9%3F%23");
    }

    #[test]
    fn links() {
        assert_eq!(
            dashboard::session_trace("a/b"),
            "/dashboard/traces/session/a%2Fb"
        );
        assert_eq!(dashboard::namespace("a.b"), "/dashboard/namespaces#ns-a.b");
        assert_eq!(
            dashboard::events_page("", "c1"),
            "/dashboard/events?cursor=c1"
        );
        assert_eq!(
            dashboard::events_page("topic=t", "c1"),
            "/dashboard/events?topic=t&cursor=c1"
        );
        assert_eq!(
            api::stamp("ab", "x y"),
            "/api/v1/metadata-stamping/stamp/ab?namespace=x%20y"
        );
        assert_eq!(api::trace_with_query("/x", ""), "/x");
        assert_eq!(api::trace_with_query("/x", "hours=2"), "/x?hours=2");
        assert_eq!(query_string(&[("a", "x y".into())]), "a=x+y");
    }
}
