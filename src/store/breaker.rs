//! A small circuit breaker for database access: after `threshold` consecutive connectivity failures
//! it opens and rejects at once for `open_for`; then it lets one trial through (half-open). A success
//! closes it, a failure re-opens it. Lock-free reads on the hot path.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

#[derive(Clone)]
pub struct Breaker {
    inner: Arc<Inner>,
}

struct Inner {
    threshold: u32,
    open_for: Duration,
    epoch: Instant,
    consecutive_failures: AtomicU32,
    /// Nanoseconds since `epoch` when the breaker opened; 0 = closed.
    opened_at: AtomicU64,
    /// Nanoseconds since `epoch` of the last trial let through while half-open.
    trial_at: AtomicU64,
    opened_total: AtomicU64,
}

impl Breaker {
    pub fn new(threshold: u32, open_for: Duration) -> Self {
        Breaker {
            inner: Arc::new(Inner {
                threshold: threshold.max(1),
                open_for,
                epoch: Instant::now(),
                consecutive_failures: AtomicU32::new(0),
                opened_at: AtomicU64::new(0),
                trial_at: AtomicU64::new(0),
                opened_total: AtomicU64::new(0),
            }),
        }
    }

    fn now(&self) -> u64 {
        (self.inner.epoch.elapsed().as_nanos() as u64).max(1)
    }

    pub fn state(&self) -> BreakerState {
        let opened = self.inner.opened_at.load(Ordering::Acquire);
        if opened == 0 {
            BreakerState::Closed
        } else if self.now().saturating_sub(opened) >= self.inner.open_for.as_nanos() as u64 {
            BreakerState::HalfOpen
        } else {
            BreakerState::Open
        }
    }

    /// May a call proceed? While half-open, one trial per `open_for` period is let through.
    pub fn allow(&self) -> bool {
        match self.state() {
            BreakerState::Closed => true,
            BreakerState::Open => false,
            BreakerState::HalfOpen => {
                let now = self.now();
                let last = self.inner.trial_at.load(Ordering::Acquire);
                let period = self.inner.open_for.as_nanos() as u64;
                (last == 0 || now.saturating_sub(last) >= period)
                    && self
                        .inner
                        .trial_at
                        .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
            }
        }
    }

    pub fn record_success(&self) {
        self.inner.consecutive_failures.store(0, Ordering::Release);
        if self.inner.opened_at.load(Ordering::Acquire) != 0 {
            self.inner.opened_at.store(0, Ordering::Release);
            self.inner.trial_at.store(0, Ordering::Release);
            tracing::info!("database circuit breaker closed");
        }
    }

    pub fn record_failure(&self) {
        let failures = self
            .inner
            .consecutive_failures
            .fetch_add(1, Ordering::AcqRel)
            + 1;
        let state = self.state();
        if state == BreakerState::HalfOpen
            || (state == BreakerState::Closed && failures >= self.inner.threshold)
        {
            self.inner.opened_at.store(self.now(), Ordering::Release);
            self.inner.opened_total.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("db_breaker_opened_total").increment(1);
            tracing::warn!(failures, "database circuit breaker opened");
        }
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.inner.consecutive_failures.load(Ordering::Acquire)
    }

    pub fn opened_total(&self) -> u64 {
        self.inner.opened_total.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_recovers_through_half_open() {
        let b = Breaker::new(3, Duration::from_millis(30));
        assert!(b.allow());
        b.record_failure();
        b.record_failure();
        assert_eq!(b.state(), BreakerState::Closed);
        b.record_failure();
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!b.allow());
        std::thread::sleep(Duration::from_millis(35));
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(b.allow(), "one trial");
        assert!(!b.allow(), "only one trial per period");
        b.record_failure();
        assert_eq!(b.state(), BreakerState::Open, "a failed trial re-opens");
        std::thread::sleep(Duration::from_millis(35));
        assert!(b.allow());
        b.record_success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.allow());
        assert_eq!(b.opened_total(), 2);
    }
}
