//! The pure aggregation core: events in, per-namespace deltas out, and how a delta moves a stored
//! aggregate. No I/O.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, DurationRound, Utc};
use uuid::Uuid;

use crate::events::envelope::OnexEnvelopeV1;

/// One aggregatable fact: a stamp was created (directly or by a workflow).
#[derive(Debug, Clone, PartialEq)]
pub struct StampFact {
    pub event_id: Uuid,
    pub namespace: String,
    pub file_size: i64,
    pub file_type: String,
    pub workflow_id: Option<String>,
    pub at: DateTime<Utc>,
}

/// The event the reducer aggregates: every stored stamp emits exactly one `metadata-stamp-created`
/// (a workflow's stamp too, with its `workflow_id` in the payload), so counting only these events
/// counts each stamp once.
pub const AGGREGATED_EVENT: &str = "metadata-stamp-created";

/// A text field of a fact: no NUL (PostgreSQL cannot store it), at most `max` characters.
fn clean(s: &str, max: usize) -> Option<String> {
    let s: String = s.chars().filter(|c| *c != '\0').take(max).collect();
    (!s.is_empty()).then_some(s)
}

/// The fact an envelope carries, if it is a stamp event with a valid namespace. Anything else
/// (another event type, a missing or invalid namespace) is not aggregatable and yields `None`.
pub fn fact_from_payload(
    event_id: Uuid,
    event_type: &str,
    payload: &serde_json::Value,
    at: DateTime<Utc>,
) -> Option<StampFact> {
    if event_type != AGGREGATED_EVENT {
        return None;
    }
    let namespace = payload.get("namespace")?.as_str()?;
    let namespace = crate::stamping::namespace::Namespace::parse(namespace)
        .ok()?
        .to_string();
    let workflow_id = payload.get("workflow_id").and_then(|w| {
        w.as_str()
            .and_then(|s| clean(s, 255))
            .or_else(|| w.as_u64().map(|n| n.to_string()))
    });
    Some(StampFact {
        event_id,
        namespace,
        file_size: payload
            .get("file_size")
            .and_then(|v| v.as_i64())
            .unwrap_or(0)
            .clamp(0, i64::MAX / 1_000_000),
        file_type: payload
            .get("file_type")
            .and_then(|v| v.as_str())
            .and_then(|s| clean(s, 64))
            .unwrap_or_else(|| "other".to_owned()),
        workflow_id,
        at,
    })
}

pub fn fact_from_envelope(env: &OnexEnvelopeV1) -> Option<StampFact> {
    fact_from_payload(
        env.event_id,
        &env.event_type,
        &env.payload,
        env.event_timestamp,
    )
}

/// What one batch adds to one namespace.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NamespaceDelta {
    pub stamps: i64,
    pub bytes: i64,
    pub file_types: BTreeSet<String>,
    pub workflows: BTreeSet<String>,
    pub first: Option<DateTime<Utc>>,
    pub last: Option<DateTime<Utc>>,
    pub event_ids: Vec<Uuid>,
}

/// Group facts by namespace. Facts with an event id already seen in this batch count once.
pub fn aggregate(facts: &[StampFact]) -> BTreeMap<String, NamespaceDelta> {
    let mut seen = std::collections::HashSet::new();
    let mut out: BTreeMap<String, NamespaceDelta> = BTreeMap::new();
    for f in facts {
        if !seen.insert(f.event_id) {
            continue;
        }
        let d = out.entry(f.namespace.clone()).or_default();
        d.stamps += 1;
        d.bytes += f.file_size;
        d.file_types.insert(f.file_type.clone());
        if let Some(w) = &f.workflow_id {
            d.workflows.insert(w.clone());
        }
        d.first = Some(d.first.map_or(f.at, |x| x.min(f.at)));
        d.last = Some(d.last.map_or(f.at, |x| x.max(f.at)));
        d.event_ids.push(f.event_id);
    }
    out
}

/// Split `items` into consecutive batches of at most `size` (size 0 is treated as 1).
pub fn batches<T>(items: &[T], size: usize) -> Vec<&[T]> {
    items.chunks(size.max(1)).collect()
}

/// A stored aggregate, as the reducer reads and writes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    pub namespace: String,
    pub total_stamps: i64,
    pub total_bytes: i64,
    pub distinct_file_types: i64,
    pub distinct_workflows: i64,
    pub first_seen: Option<DateTime<Utc>>,
    pub last_seen: Option<DateTime<Utc>>,
    pub window_start: Option<DateTime<Utc>>,
    pub window_end: Option<DateTime<Utc>>,
    pub window_stamps: i64,
    pub fsm_state: String,
    pub version: i64,
}

impl Aggregate {
    pub fn empty(namespace: &str) -> Self {
        Aggregate {
            namespace: namespace.to_owned(),
            total_stamps: 0,
            total_bytes: 0,
            distinct_file_types: 0,
            distinct_workflows: 0,
            first_seen: None,
            last_seen: None,
            window_start: None,
            window_end: None,
            window_stamps: 0,
            fsm_state: super::fsm::ReducerState::Idle.as_str().to_owned(),
            version: 0,
        }
    }

    /// Stamps per second over the aggregate's lifetime (first to last event, at least one second).
    pub fn throughput_per_second(&self) -> f64 {
        match (self.first_seen, self.last_seen) {
            (Some(f), Some(l)) => {
                let secs = ((l - f).num_milliseconds() as f64 / 1000.0).max(1.0);
                self.total_stamps as f64 / secs
            }
            _ => 0.0,
        }
    }
}

/// Apply a delta whose distinct-value increments were already determined (new file types and new
/// workflows actually added to the member sets). Tumbling windows of `window`: events of a later
/// window start a new one.
pub fn apply(
    agg: &Aggregate,
    delta: &NamespaceDelta,
    new_file_types: i64,
    new_workflows: i64,
    window: Duration,
) -> Aggregate {
    let mut next = agg.clone();
    next.total_stamps += delta.stamps;
    next.total_bytes += delta.bytes;
    next.distinct_file_types += new_file_types;
    next.distinct_workflows += new_workflows;
    next.first_seen = match (agg.first_seen, delta.first) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    next.last_seen = match (agg.last_seen, delta.last) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    if let Some(last) = delta.last {
        let start = last.duration_trunc(window).unwrap_or(last);
        if agg.window_start == Some(start) {
            next.window_stamps += delta.stamps;
        } else if agg.window_start.is_none_or(|s| start > s) {
            next.window_start = Some(start);
            next.window_end = Some(start + window);
            next.window_stamps = delta.stamps;
        }
        // Late events of an older window count in the totals only.
    }
    next.version = agg.version + 1;
    next.fsm_state = super::fsm::ReducerState::Persisted.as_str().to_owned();
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fact(ns: &str, size: i64, ty: &str, wf: Option<&str>, secs: i64) -> StampFact {
        StampFact {
            event_id: Uuid::new_v4(),
            namespace: ns.into(),
            file_size: size,
            file_type: ty.into(),
            workflow_id: wf.map(Into::into),
            at: DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap(),
        }
    }

    #[test]
    fn two_namespaces_sum_exactly() {
        let facts = vec![
            fact("a", 10, "document", None, 0),
            fact("b", 5, "archive", Some("w1"), 1),
            fact("a", 20, "document", Some("w1"), 2),
            fact("a", 30, "image", Some("w2"), 3),
        ];
        let d = aggregate(&facts);
        assert_eq!(d.len(), 2);
        assert_eq!(d["a"].stamps, 3);
        assert_eq!(d["a"].bytes, 60);
        assert_eq!(d["a"].file_types.len(), 2);
        assert_eq!(d["a"].workflows.len(), 2);
        assert_eq!(d["b"].bytes, 5);
        assert_eq!(d["a"].first, Some(facts[0].at));
        assert_eq!(d["a"].last, Some(facts[3].at));
    }

    #[test]
    fn only_valid_stamp_events_become_facts() {
        let env = |ty: &str, payload: serde_json::Value| OnexEnvelopeV1 {
            envelope_version: "1.0".into(),
            event_id: Uuid::new_v4(),
            event_type: ty.into(),
            event_version: "1.0".into(),
            event_timestamp: Utc::now(),
            source_node_id: String::new(),
            source_service: String::new(),
            source_version: String::new(),
            source_instance: String::new(),
            correlation_id: None,
            causation_id: None,
            environment: String::new(),
            region: String::new(),
            partition_key: None,
            payload,
            metadata: serde_json::json!({}),
        };
        let ok = fact_from_envelope(&env("metadata-stamp-created", serde_json::json!({"namespace": "a.b", "file_size": 3, "file_type": "doc\u{0}x", "workflow_id": 7}))).unwrap();
        assert_eq!(
            (ok.namespace.as_str(), ok.file_size, ok.file_type.as_str()),
            ("a.b", 3, "docx")
        );
        assert_eq!(ok.workflow_id.as_deref(), Some("7"));
        for bad in [
            env(
                "stamp-workflow-completed",
                serde_json::json!({"namespace": "a"}),
            ),
            env(
                "metadata-stamp-created",
                serde_json::json!({"namespace": "Bad NS"}),
            ),
            env(
                "metadata-stamp-created",
                serde_json::json!({"namespace": "a\u{0}"}),
            ),
            env("metadata-stamp-created", serde_json::json!({})),
        ] {
            assert!(fact_from_envelope(&bad).is_none(), "{:?}", bad.payload);
        }
    }

    #[test]
    fn empty_input_and_duplicate_ids() {
        assert!(aggregate(&[]).is_empty());
        let f = fact("a", 7, "document", None, 0);
        let d = aggregate(&[f.clone(), f]);
        assert_eq!(d["a"].stamps, 1, "one event id counts once");
    }

    #[test]
    fn batching_boundaries() {
        let items: Vec<u32> = (0..25).collect();
        let sizes: Vec<usize> = batches(&items, 10).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, [10, 10, 5]);
        assert_eq!(batches(&items, 25).len(), 1);
        assert_eq!(batches::<u32>(&[], 10).len(), 0);
    }

    #[test]
    fn apply_moves_totals_distincts_and_windows() {
        let window = Duration::seconds(300);
        let base = Aggregate::empty("a");
        let d1 = aggregate(&[
            fact("a", 10, "document", Some("w1"), 0),
            fact("a", 5, "image", None, 10),
        ]);
        let a1 = apply(&base, &d1["a"], 2, 1, window);
        assert_eq!(
            (
                a1.total_stamps,
                a1.total_bytes,
                a1.distinct_file_types,
                a1.distinct_workflows
            ),
            (2, 15, 2, 1)
        );
        assert_eq!(a1.version, 1);
        assert_eq!(a1.window_stamps, 2);
        let start = a1.window_start.unwrap();
        assert_eq!(a1.window_end.unwrap() - start, window);
        // Same window: accumulates; a later window: restarts.
        let d2 = aggregate(&[fact("a", 1, "document", Some("w1"), 20)]);
        let a2 = apply(&a1, &d2["a"], 0, 0, window);
        assert_eq!(
            (a2.total_stamps, a2.window_stamps, a2.distinct_file_types),
            (3, 3, 2)
        );
        let d3 = aggregate(&[fact("a", 1, "document", None, 10_000)]);
        let a3 = apply(&a2, &d3["a"], 0, 0, window);
        assert_eq!(a3.window_stamps, 1);
        assert!(a3.window_start.unwrap() > start);
        assert_eq!(a3.first_seen, a1.first_seen);
        assert!(a3.throughput_per_second() > 0.0);
        assert_eq!(a3.fsm_state, "persisted");
    }
}
