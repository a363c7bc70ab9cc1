//! View models: what the templates print, already formatted. Pure functions (no I/O), so the page
//! shapes (bars, timeline geometry, histogram buckets) are unit-tested without a browser.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::store::event_logs::EventLogRow;
use crate::tracer::query::{self, TraceMetrics};
use crate::web::links;

/// One bar of a horizontal bar chart; `width` is in SVG user units (0..=1000).
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub label: String,
    pub value: String,
    pub width: u32,
    pub href: Option<String>,
}

/// Bars scaled to the largest value.
pub fn bars(items: &[(String, f64)], fmt: impl Fn(f64) -> String) -> Vec<Bar> {
    let max = items.iter().map(|(_, v)| *v).fold(0.0_f64, f64::max);
    items
        .iter()
        .map(|(label, v)| Bar {
            label: label.clone(),
            value: fmt(*v),
            width: if max > 0.0 {
                ((v / max) * 1000.0)
                    .round()
                    .max(if *v > 0.0 { 4.0 } else { 0.0 }) as u32
            } else {
                0
            },
            href: None,
        })
        .collect()
}

pub fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.3f").to_string()
}

pub fn ms(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.1} s", v / 1000.0)
    } else if v >= 100.0 {
        format!("{v:.0} ms")
    } else {
        format!("{v:.2} ms")
    }
}

pub fn opt_ms(v: Option<f64>) -> String {
    v.map(ms).unwrap_or_else(|| "–".into())
}

pub fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

/// Longest payload shown inline in tables and timelines; the event page shows it whole.
pub const INLINE_PAYLOAD_CHARS: usize = 4096;

/// `pretty(v)` cut to `max` characters, marked when cut.
pub fn pretty_capped(v: &Value, max: usize) -> String {
    let full = pretty(v);
    match full.char_indices().nth(max) {
        None => full,
        Some((cut, _)) => format!(
            "{}\n… ({} more characters: open the event)",
            &full[..cut],
            full[cut..].chars().count()
        ),
    }
}

/// `success` / `failed` / `pending` — the CSS class of a status.
pub fn status_class(status: &str) -> &'static str {
    match query::outcome(status) {
        query::Outcome::Success => "ok",
        query::Outcome::Failure => "bad",
        query::Outcome::InProgress => "pending",
    }
}

/// One row of an event table or a trace timeline.
#[derive(Debug, Clone)]
pub struct EventView {
    pub event_id: String,
    /// The event's page and its JSON resource.
    pub href: String,
    pub api_href: String,
    pub time: String,
    pub offset: String,
    pub topic: String,
    pub event_type: String,
    pub status: String,
    pub status_class: &'static str,
    pub namespace: String,
    pub session_id: String,
    pub session_href: String,
    pub correlation_id: String,
    pub correlation_href: String,
    pub processing: String,
    pub payload: String,
    pub metadata: String,
    /// Timeline geometry in SVG units (0..=1000).
    pub bar_x: u32,
    pub bar_width: u32,
}

pub fn event_view(r: &EventLogRow, start: Option<DateTime<Utc>>, span_ms: f64) -> EventView {
    let offset_ms = start
        .map(|s| (r.event_timestamp.0 - s).num_microseconds().unwrap_or(0) as f64 / 1000.0)
        .unwrap_or(0.0);
    let span = if span_ms > 0.0 { span_ms } else { 1.0 };
    let bar_x = ((offset_ms / span) * 1000.0).clamp(0.0, 996.0) as u32;
    let bar_width = (r.processing_time_ms.unwrap_or(0.0) / span * 1000.0)
        .clamp(4.0, (1000 - bar_x) as f64) as u32;
    let session_id = r.session_id.clone().unwrap_or_default();
    let correlation_id = r.correlation_id.clone().unwrap_or_default();
    EventView {
        event_id: r.event_id.0.to_string(),
        href: links::dashboard::event(r.event_id.0),
        api_href: links::api::event(r.event_id.0),
        time: ts(r.event_timestamp.0),
        offset: format!("+{}", ms(offset_ms)),
        topic: r.topic.clone(),
        event_type: r.event_type.clone(),
        status: r.status.clone(),
        status_class: status_class(&r.status),
        namespace: r.namespace.clone().unwrap_or_default(),
        session_href: links::dashboard::session_trace(&session_id),
        session_id,
        correlation_href: links::dashboard::correlation_trace(&correlation_id),
        correlation_id,
        processing: opt_ms(r.processing_time_ms),
        payload: pretty_capped(&r.payload.0, INLINE_PAYLOAD_CHARS),
        metadata: pretty_capped(&r.metadata.0, INLINE_PAYLOAD_CHARS),
        bar_x,
        bar_width,
    }
}

/// Processing-time histogram: up to 12 equal-width buckets between the min and max.
pub fn histogram(rows: &[EventLogRow]) -> Vec<Bar> {
    let times: Vec<f64> = rows
        .iter()
        .filter_map(|r| r.processing_time_ms)
        .filter(|t| t.is_finite())
        .collect();
    if times.is_empty() {
        return Vec::new();
    }
    let lo = times.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = times.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let n = if hi > lo { 12 } else { 1 };
    let step = if hi > lo { (hi - lo) / n as f64 } else { 1.0 };
    let mut counts = vec![0usize; n];
    for t in &times {
        let i = (((t - lo) / step) as usize).min(n - 1);
        counts[i] += 1;
    }
    let items: Vec<(String, f64)> = counts
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let a = lo + step * i as f64;
            let label = if n == 1 {
                ms(lo)
            } else {
                format!("{} – {}", ms(a), ms(a + step))
            };
            (label, *c as f64)
        })
        .collect();
    bars(&items, |v| format!("{v:.0}"))
}

/// The metrics block of a trace page.
#[derive(Debug, Clone)]
pub struct MetricsView {
    pub total: usize,
    pub successful: usize,
    pub failed: usize,
    pub in_progress: usize,
    pub success_rate: String,
    pub timed: usize,
    pub avg: String,
    pub p50: String,
    pub p95: String,
    pub p99: String,
    pub max: String,
    /// (key, count, failed, avg)
    pub by_type: Vec<(String, usize, usize, String)>,
    pub by_topic: Vec<(String, usize, usize, String)>,
    /// (topic, avg, severity)
    pub bottlenecks: Vec<(String, String, &'static str)>,
}

pub fn metrics_view(m: &TraceMetrics) -> MetricsView {
    let p = &m.processing;
    let rows = |b: &[query::Breakdown]| {
        b.iter()
            .map(|b| {
                (
                    b.key.clone(),
                    b.count,
                    b.failed,
                    opt_ms(b.avg_processing_ms),
                )
            })
            .collect()
    };
    MetricsView {
        total: m.total_events,
        successful: m.successful,
        failed: m.failed,
        in_progress: m.in_progress,
        success_rate: format!("{:.1} %", m.success_rate * 100.0),
        timed: p.count,
        avg: ms(p.avg_ms),
        p50: ms(p.p50_ms),
        p95: ms(p.p95_ms),
        p99: ms(p.p99_ms),
        max: ms(p.max_ms),
        by_type: rows(&m.by_event_type),
        by_topic: rows(&m.by_topic),
        bottlenecks: m
            .bottlenecks
            .iter()
            .map(|b| {
                (
                    b.topic.clone(),
                    ms(b.avg_processing_ms),
                    b.severity.as_str(),
                )
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest() {
        let b = bars(
            &[
                ("a".into(), 10.0),
                ("b".into(), 5.0),
                ("c".into(), 0.0),
                ("d".into(), 0.001),
            ],
            |v| format!("{v}"),
        );
        let w: Vec<u32> = b.iter().map(|b| b.width).collect();
        assert_eq!(w, vec![1000, 500, 0, 4]);
        assert!(bars(&[("z".into(), 0.0)], |v| v.to_string())[0].width == 0);
    }

    #[test]
    fn inline_payloads_are_capped() {
        let v = serde_json::json!({"k": "é".repeat(50)});
        assert_eq!(pretty_capped(&v, 10_000), pretty(&v));
        let cut = pretty_capped(&v, 12);
        assert!(cut.starts_with("{\n  \"k\": \"é"), "{cut}");
        assert!(cut.ends_with("more characters: open the event)"), "{cut}");
    }

    #[test]
    fn formats_durations() {
        assert_eq!(ms(1.234), "1.23 ms");
        assert_eq!(ms(250.0), "250 ms");
        assert_eq!(ms(12_500.0), "12.5 s");
        assert_eq!(opt_ms(None), "–");
    }
}
