//! Logging (tracing, human or JSON), the Prometheus recorder, and per-minute latency histograms for
//! the JSON metrics endpoint and the dashboard.

use std::collections::VecDeque;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use hdrhistogram::Histogram;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::{fmt, EnvFilter};

use crate::config::{LogFormat, LogSettings};

/// Install the global subscriber. Safe to call more than once (later calls are ignored).
pub fn init_logging(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match settings.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Human => builder.try_init(),
    };
}

/// The process-wide Prometheus recorder (installed on first use).
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&[
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ])
            .expect("static buckets")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (e.g. several apps in one test process): then
        // metrics go there and this handle renders an empty page, which is harmless.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// Latencies per minute for the last hour (HDR histograms in microseconds, 3 significant digits:
/// recording is O(1) and memory is bounded whatever the request rate), for the JSON metrics and the
/// dashboard's charts.
pub struct LatencyWindow {
    minutes: Mutex<VecDeque<Minute>>,
}

struct Minute {
    /// Minutes since the Unix epoch.
    start: i64,
    histogram: Histogram<u64>,
}

/// Minutes of history kept.
pub const WINDOW_MINUTES: usize = 60;
/// Minutes `percentiles()` summarises (the current one and the four before it).
const RECENT_MINUTES: i64 = 5;
/// Longest latency recorded exactly (1 hour in µs); longer ones are clamped to it.
const MAX_MICROS: u64 = 3_600_000_000;

impl Default for LatencyWindow {
    fn default() -> Self {
        LatencyWindow {
            minutes: Mutex::new(VecDeque::with_capacity(WINDOW_MINUTES + 1)),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Percentiles {
    pub count: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Percentiles::default();
        }
        let ms = |micros: u64| micros as f64 / 1000.0;
        Percentiles {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p95_ms: ms(h.value_at_quantile(0.95)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
            mean_ms: h.mean() / 1000.0,
        }
    }
}

fn current_minute() -> i64 {
    chrono::Utc::now().timestamp().div_euclid(60)
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs .. 1 h at 3 significant digits: the bounds are constants, so this cannot fail.
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("static histogram bounds")
}

impl LatencyWindow {
    pub fn record(&self, d: Duration) {
        self.record_at(current_minute(), d);
    }

    fn record_at(&self, minute: i64, d: Duration) {
        let micros = (d.as_micros().min(u128::from(MAX_MICROS)) as u64).max(1);
        let Ok(mut minutes) = self.minutes.lock() else {
            return;
        };
        if minutes.back().is_none_or(|m| m.start < minute) {
            minutes.push_back(Minute {
                start: minute,
                histogram: new_histogram(),
            });
            while minutes
                .front()
                .is_some_and(|m| m.start <= minute - WINDOW_MINUTES as i64)
            {
                minutes.pop_front();
            }
        }
        // A clock that stepped back records into the newest minute.
        if let Some(m) = minutes.back_mut() {
            m.histogram.saturating_record(micros);
        }
    }

    /// Percentiles over the last five minutes.
    pub fn percentiles(&self) -> Percentiles {
        self.percentiles_at(current_minute())
    }

    fn percentiles_at(&self, now: i64) -> Percentiles {
        let Ok(minutes) = self.minutes.lock() else {
            return Percentiles::default();
        };
        let mut merged = new_histogram();
        for m in minutes.iter().filter(|m| m.start > now - RECENT_MINUTES) {
            // Same bounds on both sides: adding cannot fail.
            let _ = merged.add(&m.histogram);
        }
        Percentiles::of(&merged)
    }

    /// Each minute of the last hour that saw a sample: (minute start, its percentiles), oldest first.
    pub fn per_minute(&self) -> Vec<(chrono::DateTime<chrono::Utc>, Percentiles)> {
        let Ok(minutes) = self.minutes.lock() else {
            return Vec::new();
        };
        let oldest = current_minute() - WINDOW_MINUTES as i64;
        minutes
            .iter()
            .filter(|m| m.start > oldest)
            .filter_map(|m| {
                chrono::DateTime::from_timestamp(m.start * 60, 0)
                    .map(|t| (t, Percentiles::of(&m.histogram)))
            })
            .collect()
    }
}

/// Nearest-rank percentile of sorted samples: for 1..=100, p50 = 50, p95 = 95, p99 = 99.
pub fn nearest_rank(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(nearest_rank(&v, 50.0), 50.0);
        assert_eq!(nearest_rank(&v, 95.0), 95.0);
        assert_eq!(nearest_rank(&v, 99.0), 99.0);
        assert_eq!(nearest_rank(&[7.0], 99.0), 7.0);
    }

    #[test]
    fn latency_window_percentiles_and_rotation() {
        let w = LatencyWindow::default();
        for ms in 1..=100 {
            w.record_at(1_000, Duration::from_millis(ms));
        }
        let p = w.percentiles_at(1_000);
        assert_eq!(p.count, 100);
        // 3 significant digits: within 0.1 %.
        for (got, want) in [
            (p.p50_ms, 50.0),
            (p.p95_ms, 95.0),
            (p.p99_ms, 99.0),
            (p.max_ms, 100.0),
        ] {
            assert!((got - want).abs() <= want * 0.001, "{got} vs {want}");
        }
        assert!((p.mean_ms - 50.5).abs() < 0.05, "{}", p.mean_ms);
        // Five minutes later the samples have left the recent window but are still in the hour.
        w.record_at(1_005, Duration::from_millis(7));
        let p = w.percentiles_at(1_005);
        assert_eq!(p.count, 1);
        assert!((p.p99_ms - 7.0).abs() <= 0.007);
        // Only the last hour is kept.
        w.record_at(1_000 + WINDOW_MINUTES as i64, Duration::from_millis(1));
        let starts: Vec<i64> = w.minutes.lock().unwrap().iter().map(|m| m.start).collect();
        assert_eq!(starts, vec![1_005, 1_060]);
        assert_eq!(
            LatencyWindow::default().percentiles(),
            Percentiles::default()
        );
    }
}
