//! The in-flight request-body budget (`http.max_inflight_body_bytes`): every body the service holds
//! in memory is admitted against it — by its `Content-Length` before a byte is read, or chunk by
//! chunk as a chunked body arrives — and given back when the request is done. When it is spent the
//! request is refused at once (503 with `Retry-After`) instead of the process running out of memory.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Shared by every worker of the server.
#[derive(Debug, Clone)]
pub struct BodyBudget {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    limit: u64,
    used: AtomicU64,
}

/// The budget is spent: the body would take the bytes held in memory over the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("request bodies in flight already hold {used} of {limit} bytes; {wanted} more cannot be admitted now")]
pub struct BudgetSpent {
    pub used: u64,
    pub wanted: u64,
    pub limit: u64,
}

impl BodyBudget {
    pub fn new(limit: u64) -> Self {
        BodyBudget {
            inner: Arc::new(Inner {
                limit,
                used: AtomicU64::new(0),
            }),
        }
    }

    /// An empty reservation to grow as bytes arrive.
    pub fn reservation(&self) -> Reservation {
        Reservation {
            budget: self.clone(),
            bytes: 0,
        }
    }

    /// Bytes reserved now (all requests).
    pub fn used(&self) -> u64 {
        self.inner.used.load(Ordering::Relaxed)
    }

    pub fn limit(&self) -> u64 {
        self.inner.limit
    }

    fn take(&self, n: u64) -> Result<(), BudgetSpent> {
        let limit = self.inner.limit;
        self.inner
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|&total| total <= limit)
            })
            .map(|_| ())
            .map_err(|used| BudgetSpent {
                used,
                wanted: n,
                limit,
            })
    }
}

/// Bytes of the budget held by one request; given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: BodyBudget,
    bytes: u64,
}

impl Reservation {
    /// Hold `total` bytes in all (no-op when already held).
    pub fn grow_to(&mut self, total: u64) -> Result<(), BudgetSpent> {
        if total > self.bytes {
            self.budget.take(total - self.bytes)?;
            self.bytes = total;
        }
        Ok(())
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.budget
                .inner
                .used
                .fetch_sub(self.bytes, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_the_limit_and_gives_back_on_drop() {
        let b = BodyBudget::new(100);
        let mut a = b.reservation();
        a.grow_to(60).unwrap();
        a.grow_to(50).unwrap();
        assert_eq!((a.bytes(), b.used()), (60, 60));
        let mut c = b.reservation();
        assert_eq!(
            c.grow_to(41),
            Err(BudgetSpent {
                used: 60,
                wanted: 41,
                limit: 100
            })
        );
        c.grow_to(40).unwrap();
        assert_eq!(b.used(), 100);
        drop(a);
        assert_eq!(b.used(), 40);
        drop(c);
        assert_eq!(b.used(), 0);
    }
}
