//! Response cache of the OnexTree client: TTL, a maximum size, and when full the least recently used
//! 20 % are evicted at once. Only successes are put in it. Pure: the caller passes the time.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;

pub struct TtlLruCache {
    ttl: Duration,
    max_entries: usize,
    entries: HashMap<String, Entry>,
    tick: u64,
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
}

struct Entry {
    value: Value,
    inserted: Instant,
    last_used: u64,
}

impl TtlLruCache {
    pub fn new(ttl: Duration, max_entries: usize) -> Self {
        TtlLruCache {
            ttl,
            max_entries: max_entries.max(1),
            entries: HashMap::new(),
            tick: 0,
            hits: 0,
            misses: 0,
            evictions: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&mut self, key: &str, now: Instant) -> Option<Value> {
        self.tick += 1;
        let fresh = match self.entries.get_mut(key) {
            Some(e) if now.duration_since(e.inserted) < self.ttl => {
                e.last_used = self.tick;
                Some(e.value.clone())
            }
            Some(_) => None,
            None => None,
        };
        if fresh.is_none() {
            self.entries.remove(key);
            self.misses += 1;
        } else {
            self.hits += 1;
        }
        fresh
    }

    pub fn put(&mut self, key: String, value: Value, now: Instant) {
        self.tick += 1;
        if !self.entries.contains_key(&key) && self.entries.len() >= self.max_entries {
            // Drop expired entries first, then the least recently used 20 %.
            self.entries
                .retain(|_, e| now.duration_since(e.inserted) < self.ttl);
            if self.entries.len() >= self.max_entries {
                let evict = (self.max_entries / 5).max(1);
                let mut by_use: Vec<(u64, String)> = self
                    .entries
                    .iter()
                    .map(|(k, e)| (e.last_used, k.clone()))
                    .collect();
                by_use.sort();
                for (_, k) in by_use.into_iter().take(evict) {
                    self.entries.remove(&k);
                    self.evictions += 1;
                }
            }
        }
        self.entries.insert(
            key,
            Entry {
                value,
                inserted: now,
                last_used: self.tick,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ttl_and_lru_eviction_of_20_percent() {
        let t0 = Instant::now();
        let mut c = TtlLruCache::new(Duration::from_secs(300), 10);
        for i in 0..10 {
            c.put(format!("k{i}"), json!(i), t0);
        }
        // Use k0 and k1 so they are recent; the 11th entry evicts the 2 least recently used (k2, k3).
        assert_eq!(c.get("k0", t0), Some(json!(0)));
        assert_eq!(c.get("k1", t0), Some(json!(1)));
        c.put("k10".into(), json!(10), t0);
        assert_eq!(c.len(), 9);
        assert_eq!(c.evictions, 2);
        assert!(c.get("k2", t0).is_none() && c.get("k3", t0).is_none());
        assert!(c.get("k0", t0).is_some() && c.get("k4", t0).is_some());
        // Expired after the TTL.
        assert!(c.get("k0", t0 + Duration::from_secs(300)).is_none());
        assert!(c.hits >= 4 && c.misses >= 3);
    }
}
