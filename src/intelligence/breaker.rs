//! The OnexTree circuit breaker, with the exact rules of SPEC §4. Pure: the caller passes the time.
//!
//! - closed: opens after `failure_threshold` consecutive failures, once `minimum_throughput` calls
//!   were seen in total;
//! - open: rejects every call until `recovery_timeout` has passed, then half-open;
//! - half-open: lets at most `half_open_max_calls` trial calls through; `success_threshold` successes
//!   close it; any failure reopens it.

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    pub failure_threshold: u32,
    pub minimum_throughput: u32,
    pub recovery_timeout: Duration,
    pub half_open_max_calls: u32,
    pub success_threshold: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 5,
            minimum_throughput: 5,
            recovery_timeout: Duration::from_secs(60),
            half_open_max_calls: 3,
            success_threshold: 2,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed,
    Open { since: Instant },
    HalfOpen { admitted: u32, successes: u32 },
}

#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    pub config: BreakerConfig,
    state: State,
    consecutive_failures: u32,
    total_calls: u64,
}

impl CircuitBreaker {
    pub fn new(config: BreakerConfig) -> Self {
        CircuitBreaker {
            config,
            state: State::Closed,
            consecutive_failures: 0,
            total_calls: 0,
        }
    }

    pub fn state_name(&self, now: Instant) -> &'static str {
        match self.state {
            State::Closed => "closed",
            State::Open { since } if now.duration_since(since) >= self.config.recovery_timeout => {
                "half_open"
            }
            State::Open { .. } => "open",
            State::HalfOpen { .. } => "half_open",
        }
    }

    /// May a call go out now? (Counts it as admitted while half-open.)
    pub fn try_acquire(&mut self, now: Instant) -> bool {
        if let State::Open { since } = self.state {
            if now.duration_since(since) >= self.config.recovery_timeout {
                self.state = State::HalfOpen {
                    admitted: 0,
                    successes: 0,
                };
            }
        }
        match &mut self.state {
            State::Closed => true,
            State::Open { .. } => false,
            State::HalfOpen { admitted, .. } => {
                if *admitted < self.config.half_open_max_calls {
                    *admitted += 1;
                    true
                } else {
                    false
                }
            }
        }
    }

    pub fn on_success(&mut self) {
        self.total_calls += 1;
        self.consecutive_failures = 0;
        if let State::HalfOpen { successes, .. } = &mut self.state {
            *successes += 1;
            if *successes >= self.config.success_threshold {
                self.state = State::Closed;
            }
        }
    }

    pub fn on_failure(&mut self, now: Instant) {
        self.total_calls += 1;
        self.consecutive_failures += 1;
        match self.state {
            State::HalfOpen { .. } => self.state = State::Open { since: now },
            State::Closed
                if self.consecutive_failures >= self.config.failure_threshold
                    && self.total_calls >= self.config.minimum_throughput as u64 =>
            {
                self.state = State::Open { since: now };
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_spec_rules() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(BreakerConfig::default());
        // Four failures: still closed; the fifth opens it (5 calls seen).
        for _ in 0..4 {
            assert!(b.try_acquire(t0));
            b.on_failure(t0);
        }
        assert_eq!(b.state_name(t0), "closed");
        assert!(b.try_acquire(t0));
        b.on_failure(t0);
        assert_eq!(b.state_name(t0), "open");
        assert!(!b.try_acquire(t0 + Duration::from_secs(59)));
        // Half-open after 60 s: at most 3 trials.
        let t1 = t0 + Duration::from_secs(60);
        assert!(b.try_acquire(t1) && b.try_acquire(t1) && b.try_acquire(t1));
        assert!(!b.try_acquire(t1));
        b.on_success();
        assert_eq!(b.state_name(t1), "half_open");
        b.on_success();
        assert_eq!(b.state_name(t1), "closed");
        // A half-open failure reopens.
        for _ in 0..5 {
            b.try_acquire(t1);
            b.on_failure(t1);
        }
        let t2 = t1 + Duration::from_secs(61);
        assert!(b.try_acquire(t2));
        b.on_failure(t2);
        assert_eq!(b.state_name(t2), "open");
    }

    #[test]
    fn minimum_throughput_is_respected() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(BreakerConfig {
            failure_threshold: 2,
            minimum_throughput: 5,
            ..Default::default()
        });
        for _ in 0..4 {
            b.try_acquire(t0);
            b.on_failure(t0);
        }
        assert_eq!(b.state_name(t0), "closed", "4 calls < minimum throughput");
        b.try_acquire(t0);
        b.on_failure(t0);
        assert_eq!(b.state_name(t0), "open");
    }
}
