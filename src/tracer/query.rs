//! Trace queries, the pure part: what a session or correlation trace says (order, duration, status
//! from the latest event) and its metrics (SPEC §8: totals, success rate, nearest-rank p50/p95/p99 of
//! processing time, per-type and per-topic breakdowns, bottlenecks). No I/O: the rows come from
//! `crate::store::event_logs`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::store::event_logs::EventLogRow;
use crate::telemetry::nearest_rank;

/// How a recorded status counts in the success rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    /// Neither yet (`processing`, `pending`, …): counted in the total only.
    InProgress,
}

pub fn outcome(status: &str) -> Outcome {
    match status.to_ascii_lowercase().as_str() {
        "success" | "succeeded" | "completed" | "complete" | "ok" | "processed" | "delivered" => {
            Outcome::Success
        }
        "failed" | "failure" | "error" | "timeout" | "timed_out" | "cancelled" | "rejected" => {
            Outcome::Failure
        }
        _ => Outcome::InProgress,
    }
}

/// A trace's shape: `events` must be ordered oldest first (as the store returns them).
#[derive(Debug, Clone, PartialEq)]
pub struct TraceSummary {
    pub event_count: usize,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub duration_ms: f64,
    /// The status of the latest event.
    pub status: Option<String>,
    /// Distinct session ids, in first-seen order (a correlation trace may span several).
    pub sessions: Vec<String>,
}

pub fn summarize(events: &[EventLogRow]) -> TraceSummary {
    let started_at = events.first().map(|e| e.event_timestamp.0);
    let ended_at = events.last().map(|e| e.event_timestamp.0);
    let duration_ms = match (started_at, ended_at) {
        (Some(a), Some(b)) => (b - a).num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0,
        _ => 0.0,
    };
    let mut sessions: Vec<String> = Vec::new();
    for s in events.iter().filter_map(|e| e.session_id.as_ref()) {
        if !sessions.contains(s) {
            sessions.push(s.clone());
        }
    }
    TraceSummary {
        event_count: events.len(),
        started_at,
        ended_at,
        duration_ms,
        status: events.last().map(|e| e.status.clone()),
        sessions,
    }
}

/// Bottleneck severity of a topic by its average processing time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    High,
    Medium,
    Low,
}

impl Severity {
    /// avg > 5 s high, > 2 s medium, > 1 s low, otherwise not a bottleneck.
    pub fn of(avg_ms: f64) -> Option<Severity> {
        if avg_ms > 5000.0 {
            Some(Severity::High)
        } else if avg_ms > 2000.0 {
            Some(Severity::Medium)
        } else if avg_ms > 1000.0 {
            Some(Severity::Low)
        } else {
            None
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
        }
    }
}

/// Processing-time statistics over the events that report one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LatencyStats {
    pub count: usize,
    pub avg_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
}

fn latency(mut times: Vec<f64>) -> LatencyStats {
    if times.is_empty() {
        return LatencyStats::default();
    }
    times.sort_by(f64::total_cmp);
    LatencyStats {
        count: times.len(),
        avg_ms: times.iter().sum::<f64>() / times.len() as f64,
        min_ms: times[0],
        max_ms: times[times.len() - 1],
        p50_ms: nearest_rank(&times, 50.0),
        p95_ms: nearest_rank(&times, 95.0),
        p99_ms: nearest_rank(&times, 99.0),
    }
}

/// Counts and average processing time of one group (an event type or a topic).
#[derive(Debug, Clone, PartialEq)]
pub struct Breakdown {
    pub key: String,
    pub count: usize,
    pub successful: usize,
    pub failed: usize,
    pub avg_processing_ms: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Bottleneck {
    pub topic: String,
    pub avg_processing_ms: f64,
    pub count: usize,
    pub severity: Severity,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TraceMetrics {
    pub total_events: usize,
    pub successful: usize,
    pub failed: usize,
    pub in_progress: usize,
    /// successful / total, 0 when there are no events.
    pub success_rate: f64,
    pub processing: LatencyStats,
    pub by_event_type: Vec<Breakdown>,
    pub by_topic: Vec<Breakdown>,
    /// Worst first.
    pub bottlenecks: Vec<Bottleneck>,
}

#[derive(Default)]
struct Acc {
    count: usize,
    successful: usize,
    failed: usize,
    times: Vec<f64>,
}

impl Acc {
    fn add(&mut self, e: &EventLogRow) {
        self.count += 1;
        match outcome(&e.status) {
            Outcome::Success => self.successful += 1,
            Outcome::Failure => self.failed += 1,
            Outcome::InProgress => {}
        }
        if let Some(t) = e.processing_time_ms.filter(|t| t.is_finite()) {
            self.times.push(t);
        }
    }

    fn avg(&self) -> Option<f64> {
        (!self.times.is_empty()).then(|| self.times.iter().sum::<f64>() / self.times.len() as f64)
    }

    fn breakdown(&self, key: &str) -> Breakdown {
        Breakdown {
            key: key.to_owned(),
            count: self.count,
            successful: self.successful,
            failed: self.failed,
            avg_processing_ms: self.avg(),
        }
    }
}

pub fn metrics(events: &[EventLogRow]) -> TraceMetrics {
    let mut all = Acc::default();
    let mut by_type: BTreeMap<&str, Acc> = BTreeMap::new();
    let mut by_topic: BTreeMap<&str, Acc> = BTreeMap::new();
    for e in events {
        all.add(e);
        by_type.entry(&e.event_type).or_default().add(e);
        by_topic.entry(&e.topic).or_default().add(e);
    }
    let mut bottlenecks: Vec<Bottleneck> = by_topic
        .iter()
        .filter_map(|(topic, acc)| {
            let avg = acc.avg()?;
            Some(Bottleneck {
                topic: (*topic).to_owned(),
                avg_processing_ms: avg,
                count: acc.count,
                severity: Severity::of(avg)?,
            })
        })
        .collect();
    bottlenecks.sort_by(|a, b| {
        a.severity
            .cmp(&b.severity)
            .then(b.avg_processing_ms.total_cmp(&a.avg_processing_ms))
    });
    let in_progress = all.count - all.successful - all.failed;
    TraceMetrics {
        total_events: all.count,
        successful: all.successful,
        failed: all.failed,
        in_progress,
        success_rate: if all.count == 0 {
            0.0
        } else {
            all.successful as f64 / all.count as f64
        },
        processing: latency(std::mem::take(&mut all.times)),
        by_event_type: by_type.iter().map(|(k, a)| a.breakdown(k)).collect(),
        by_topic: by_topic.iter().map(|(k, a)| a.breakdown(k)).collect(),
        bottlenecks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sql_types::{DbJson, DbTs, DbUuid};
    use chrono::TimeZone;

    fn ev(i: i64, topic: &str, event_type: &str, status: &str, ms: Option<f64>) -> EventLogRow {
        EventLogRow {
            event_id: DbUuid(uuid::Uuid::from_u128(i as u128)),
            session_id: Some(format!("s-{}", i % 2)),
            correlation_id: Some("c".into()),
            event_type: event_type.into(),
            topic: topic.into(),
            kafka_partition: None,
            kafka_offset: None,
            event_timestamp: DbTs(Utc.timestamp_opt(1_700_000_000 + i, 0).unwrap()),
            status: status.into(),
            processing_time_ms: ms,
            namespace: None,
            payload: DbJson(serde_json::json!({})),
            metadata: DbJson(serde_json::json!({})),
            recorded_at: DbTs(Utc::now()),
        }
    }

    #[test]
    fn percentiles_of_one_to_hundred_are_nearest_rank() {
        let events: Vec<_> = (1..=100)
            .map(|i| ev(i, "t", "event", "success", Some(i as f64)))
            .collect();
        let m = metrics(&events);
        assert_eq!(
            (
                m.processing.p50_ms,
                m.processing.p95_ms,
                m.processing.p99_ms
            ),
            (50.0, 95.0, 99.0)
        );
        assert_eq!((m.processing.min_ms, m.processing.max_ms), (1.0, 100.0));
        assert_eq!(m.processing.avg_ms, 50.5);
        assert_eq!(m.success_rate, 1.0);
    }

    #[test]
    fn bottleneck_severities_and_order() {
        let events = vec![
            ev(1, "fast", "event", "success", Some(900.0)),
            ev(2, "low", "event", "success", Some(1500.0)),
            ev(3, "medium", "event", "success", Some(3000.0)),
            ev(4, "high", "event", "success", Some(6000.0)),
            ev(5, "none", "event", "success", None),
        ];
        let got: Vec<(String, &str)> = metrics(&events)
            .bottlenecks
            .iter()
            .map(|b| (b.topic.clone(), b.severity.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("high".to_owned(), "high"),
                ("medium".to_owned(), "medium"),
                ("low".to_owned(), "low")
            ]
        );
        // Boundaries are exclusive.
        assert_eq!(Severity::of(5000.0), Some(Severity::Medium));
        assert_eq!(Severity::of(1000.0), None);
    }

    #[test]
    fn breakdowns_rate_and_summary() {
        let events = vec![
            ev(1, "a", "request", "success", Some(10.0)),
            ev(2, "a", "request", "failed", Some(30.0)),
            ev(3, "b", "status", "processing", None),
            ev(4, "b", "response", "completed", Some(5.0)),
        ];
        let m = metrics(&events);
        assert_eq!(
            (m.total_events, m.successful, m.failed, m.in_progress),
            (4, 2, 1, 1)
        );
        assert_eq!(m.success_rate, 0.5);
        let a = &m.by_topic[0];
        assert_eq!(
            (a.key.as_str(), a.count, a.failed, a.avg_processing_ms),
            ("a", 2, 1, Some(20.0))
        );
        let types: Vec<_> = m
            .by_event_type
            .iter()
            .map(|b| (b.key.as_str(), b.count))
            .collect();
        assert_eq!(types, vec![("request", 2), ("response", 1), ("status", 1)]);

        let s = summarize(&events);
        assert_eq!(s.event_count, 4);
        assert_eq!(s.duration_ms, 3000.0);
        assert_eq!(s.status.as_deref(), Some("completed"));
        assert_eq!(s.sessions, vec!["s-1".to_owned(), "s-0".to_owned()]);
    }

    #[test]
    fn empty_trace_is_empty_not_an_error() {
        let m = metrics(&[]);
        assert_eq!((m.total_events, m.success_rate), (0, 0.0));
        assert_eq!(m.processing, LatencyStats::default());
        let s = summarize(&[]);
        assert_eq!((s.event_count, s.duration_ms, s.status), (0, 0.0, None));
    }
}
