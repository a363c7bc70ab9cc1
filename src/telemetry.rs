//! Logging (tracing, human or JSON), the Prometheus recorder, and small in-process latency windows
//! for the JSON metrics endpoint.

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

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

/// The last `CAPACITY` latencies, for percentiles in the JSON metrics.
pub struct LatencyWindow {
    samples: Mutex<Ring>,
}

struct Ring {
    buf: Vec<f64>,
    next: usize,
    count: u64,
}

const CAPACITY: usize = 4096;

impl Default for LatencyWindow {
    fn default() -> Self {
        LatencyWindow {
            samples: Mutex::new(Ring {
                buf: Vec::with_capacity(CAPACITY),
                next: 0,
                count: 0,
            }),
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

impl LatencyWindow {
    pub fn record(&self, d: Duration) {
        let ms = d.as_secs_f64() * 1000.0;
        let Ok(mut ring) = self.samples.lock() else {
            return;
        };
        if ring.buf.len() < CAPACITY {
            ring.buf.push(ms);
        } else {
            let i = ring.next;
            ring.buf[i] = ms;
        }
        ring.next = (ring.next + 1) % CAPACITY;
        ring.count += 1;
    }

    pub fn percentiles(&self) -> Percentiles {
        let (mut v, count) = match self.samples.lock() {
            Ok(r) => (r.buf.clone(), r.count),
            Err(_) => return Percentiles::default(),
        };
        if v.is_empty() {
            return Percentiles::default();
        }
        v.sort_by(|a, b| a.total_cmp(b));
        Percentiles {
            count,
            p50_ms: nearest_rank(&v, 50.0),
            p95_ms: nearest_rank(&v, 95.0),
            p99_ms: nearest_rank(&v, 99.0),
            max_ms: v[v.len() - 1],
            mean_ms: v.iter().sum::<f64>() / v.len() as f64,
        }
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
        let w = LatencyWindow::default();
        for ms in 1..=100 {
            w.record(Duration::from_millis(ms));
        }
        let p = w.percentiles();
        assert_eq!(p.count, 100);
        assert!((p.p95_ms - 95.0).abs() < 1e-9);
    }
}
