//! The OnexTree intelligence client (SPEC §4): HTTP calls with retries on network errors and timeouts
//! only, a circuit breaker, a TTL + LRU cache of successes, confidence scoring, and a degraded fallback
//! so that a workflow always continues. Pure parts in `breaker`, `cache`, `confidence`.

pub mod breaker;
pub mod cache;
pub mod confidence;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use breaker::{BreakerConfig, CircuitBreaker};
use cache::TtlLruCache;
use confidence::Level;

#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub base_url: String,
    pub timeout: Duration,
    /// Attempts for network errors/timeouts (1 = no retry).
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub breaker: BreakerConfig,
    pub cache_ttl: Duration,
    pub cache_max_entries: usize,
}

impl ClientConfig {
    pub fn new(base_url: &str) -> Self {
        ClientConfig {
            base_url: base_url.trim_end_matches('/').to_owned(),
            timeout: Duration::from_secs(2),
            max_attempts: 3,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            breaker: BreakerConfig::default(),
            cache_ttl: Duration::from_secs(300),
            cache_max_entries: 1000,
        }
    }
}

/// What a call returns: real data with its confidence, or the degraded fallback.
#[derive(Debug, Clone, PartialEq)]
pub struct IntelligenceResult {
    pub data: Value,
    pub confidence: f64,
    pub level: Level,
    pub degraded: bool,
    pub cached: bool,
    /// Why the result is degraded.
    pub reason: Option<String>,
}

impl IntelligenceResult {
    fn degraded(reason: String) -> Self {
        IntelligenceResult {
            data: json!({}),
            confidence: 0.0,
            level: Level::Minimal,
            degraded: true,
            cached: false,
            reason: Some(reason),
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "data": self.data,
            "confidence": self.confidence,
            "confidence_level": self.level.as_str(),
            "degraded": self.degraded,
            "cached": self.cached,
            "reason": self.reason,
        })
    }
}

#[derive(Debug, thiserror::Error)]
enum CallError {
    #[error("circuit breaker open")]
    Open,
    #[error("network: {0}")]
    Network(String),
    #[error("OnexTree answered {0}")]
    Status(u16),
    #[error("unexpected response: {0}")]
    Body(String),
}

/// The client's state: breaker and cache.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientStatus {
    pub url: String,
    /// `closed` | `open` | `half_open`
    pub circuit_breaker: &'static str,
    /// `None` if the cache could not be read.
    pub cache: Option<CacheStats>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    pub entries: usize,
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
}

pub struct OnexTreeClient {
    config: ClientConfig,
    http: reqwest::Client,
    breaker: Mutex<CircuitBreaker>,
    cache: Mutex<TtlLruCache>,
}

impl OnexTreeClient {
    pub fn new(config: ClientConfig) -> Self {
        OnexTreeClient {
            http: reqwest::Client::builder()
                .timeout(config.timeout)
                .build()
                .unwrap_or_default(),
            breaker: Mutex::new(CircuitBreaker::new(config.breaker)),
            cache: Mutex::new(TtlLruCache::new(config.cache_ttl, config.cache_max_entries)),
            config,
        }
    }

    /// Breaker state and cache statistics (shown by `/health`).
    pub fn status_report(&self) -> ClientStatus {
        let now = Instant::now();
        let circuit_breaker = self
            .breaker
            .lock()
            .map(|b| b.state_name(now))
            .unwrap_or("unknown");
        let cache = self.cache.lock().ok().map(|c| CacheStats {
            entries: c.len(),
            hits: c.hits,
            misses: c.misses,
            evictions: c.evictions,
        });
        ClientStatus {
            url: self.config.base_url.clone(),
            circuit_breaker,
            cache,
        }
    }

    /// `status_report` as JSON, the shape `/health` shows under `intelligence_client`.
    pub fn status(&self) -> Value {
        let r = self.status_report();
        let cache = r.cache.map_or(Value::Null, |c| {
            json!({"entries": c.entries, "hits": c.hits, "misses": c.misses, "evictions": c.evictions})
        });
        json!({"url": r.url, "circuit_breaker": r.circuit_breaker, "cache": cache})
    }

    pub async fn intelligence(
        &self,
        context: &str,
        include_patterns: bool,
        include_relationships: bool,
    ) -> IntelligenceResult {
        self.call(
            "/intelligence",
            json!({"context": context, "include_patterns": include_patterns, "include_relationships": include_relationships}),
        )
        .await
    }

    pub async fn knowledge_query(&self, query: Value) -> IntelligenceResult {
        self.call("/knowledge/query", query).await
    }

    pub async fn tree_navigate(&self, request: Value) -> IntelligenceResult {
        self.call("/tree/navigate", request).await
    }

    /// `GET /health` of the OnexTree service (not cached, not counted by the breaker).
    pub async fn health(&self) -> bool {
        matches!(self.http.get(format!("{}/health", self.config.base_url)).send().await, Ok(r) if r.status().is_success())
    }

    async fn call(&self, path: &str, body: Value) -> IntelligenceResult {
        let key = format!("{path} {body}");
        if let Some(data) = self
            .cache
            .lock()
            .ok()
            .and_then(|mut c| c.get(&key, Instant::now()))
        {
            return self.result(data, true);
        }
        match self.call_uncached(path, &body).await {
            Ok(data) => {
                if let Ok(mut c) = self.cache.lock() {
                    c.put(key, data.clone(), Instant::now());
                }
                self.result(data, false)
            }
            Err(e) => {
                metrics::counter!("onextree_degraded_total").increment(1);
                tracing::warn!(path, error = %e, "OnexTree call failed; degraded result");
                IntelligenceResult::degraded(e.to_string())
            }
        }
    }

    fn result(&self, data: Value, cached: bool) -> IntelligenceResult {
        let confidence = confidence::score(&data);
        IntelligenceResult {
            level: Level::of(confidence),
            confidence,
            data,
            degraded: false,
            cached,
            reason: None,
        }
    }

    async fn call_uncached(&self, path: &str, body: &Value) -> Result<Value, CallError> {
        let url = format!("{}{path}", self.config.base_url);
        let mut attempt = 0;
        loop {
            attempt += 1;
            if !self
                .breaker
                .lock()
                .map(|mut b| b.try_acquire(Instant::now()))
                .unwrap_or(false)
            {
                return Err(CallError::Open);
            }
            metrics::counter!("onextree_calls_total").increment(1);
            let outcome = match self.http.post(&url).json(body).send().await {
                Err(e) => Err(CallError::Network(e.to_string())),
                Ok(r) if !r.status().is_success() => Err(CallError::Status(r.status().as_u16())),
                Ok(r) => match r.json::<Value>().await {
                    Ok(v) if v["status"] == "success" && v["data"].is_object() => {
                        Ok(v["data"].clone())
                    }
                    Ok(v) => Err(CallError::Body(format!("status {}", v["status"]))),
                    Err(e) => Err(CallError::Body(e.to_string())),
                },
            };
            match outcome {
                Ok(data) => {
                    if let Ok(mut b) = self.breaker.lock() {
                        b.on_success();
                    }
                    return Ok(data);
                }
                Err(e) => {
                    if let Ok(mut b) = self.breaker.lock() {
                        b.on_failure(Instant::now());
                    }
                    // Only network errors and timeouts are retried.
                    let retriable = matches!(e, CallError::Network(_));
                    if !retriable || attempt >= self.config.max_attempts {
                        return Err(e);
                    }
                    let backoff = self
                        .config
                        .initial_backoff
                        .saturating_mul(1 << (attempt - 1).min(16))
                        .min(self.config.max_backoff);
                    tokio::time::sleep(backoff).await;
                }
            }
        }
    }
}
