//! The OnexTree client against a local stub server: success and confidence, cache hits, no retry on
//! 5xx, retries on timeouts, the circuit breaker opening and recovering through half-open, and the
//! degraded fallback whenever the service cannot answer.

use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use omninode_bridge::intelligence::breaker::BreakerConfig;
use omninode_bridge::intelligence::confidence::Level;
use omninode_bridge::intelligence::{ClientConfig, OnexTreeClient};
use serde_json::json;

const OK: u8 = 0;
const FAIL_500: u8 = 1;
const SLOW: u8 = 2;

struct Stub {
    url: String,
    mode: Arc<AtomicU8>,
    calls: Arc<AtomicU32>,
}

async fn stub() -> Stub {
    let mode = Arc::new(AtomicU8::new(OK));
    let calls = Arc::new(AtomicU32::new(0));
    let (m, c) = (mode.clone(), calls.clone());
    let server = actix_web::HttpServer::new(move || {
        let (m, c) = (m.clone(), c.clone());
        actix_web::App::new().default_service(actix_web::web::to(move || {
            let (m, c) = (m.clone(), c.clone());
            async move {
                c.fetch_add(1, Ordering::SeqCst);
                match m.load(Ordering::SeqCst) {
                    FAIL_500 => actix_web::HttpResponse::InternalServerError().finish(),
                    SLOW => {
                        tokio::time::sleep(Duration::from_secs(2)).await;
                        actix_web::HttpResponse::Ok().finish()
                    }
                    _ => actix_web::HttpResponse::Ok().json(json!({"status": "success", "data": {
                        "data_quality": 1.0, "pattern_strength": 1.0, "coverage": 0.8, "relationship_density": 0.0,
                        "patterns": ["reducer"]}})),
                }
            }
        }))
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let url = format!("http://{}", server.addrs()[0]);
    tokio::spawn(server.run());
    Stub { url, mode, calls }
}

fn client(url: &str) -> OnexTreeClient {
    let mut c = ClientConfig::new(url);
    c.timeout = Duration::from_millis(300);
    c.initial_backoff = Duration::from_millis(10);
    c.breaker = BreakerConfig {
        recovery_timeout: Duration::from_millis(300),
        ..Default::default()
    };
    OnexTreeClient::new(c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn success_confidence_and_cache() {
    let s = stub().await;
    let c = client(&s.url);
    let r = c.intelligence("stamp a reducer", true, true).await;
    assert!(!r.degraded && !r.cached, "{r:?}");
    assert!((r.confidence - 0.81).abs() < 1e-9);
    assert_eq!(r.level, Level::High);
    assert_eq!(r.data["patterns"][0], "reducer");
    let again = c.intelligence("stamp a reducer", true, true).await;
    assert!(again.cached);
    assert_eq!(s.calls.load(Ordering::SeqCst), 1, "served from the cache");
    assert_eq!(c.status()["cache"]["hits"], 1);
    assert!(c.health().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_retry_on_5xx_retries_on_timeouts_and_failures_are_not_cached() {
    let s = stub().await;
    let c = client(&s.url);
    s.mode.store(FAIL_500, Ordering::SeqCst);
    let r = c.intelligence("a", false, false).await;
    assert!(r.degraded);
    assert_eq!((r.confidence, r.level), (0.0, Level::Minimal));
    assert!(r.reason.as_deref().unwrap().contains("500"));
    assert_eq!(s.calls.load(Ordering::SeqCst), 1, "a 5xx is not retried");

    s.mode.store(SLOW, Ordering::SeqCst);
    let r = c.intelligence("b", false, false).await;
    assert!(r.degraded);
    assert!(r.reason.as_deref().unwrap().contains("network"), "{r:?}");
    assert_eq!(
        s.calls.load(Ordering::SeqCst),
        4,
        "a timeout is retried (3 attempts)"
    );

    // Nothing failed was cached: the same request now succeeds and reaches the service.
    s.mode.store(OK, Ordering::SeqCst);
    let r = c.intelligence("a", false, false).await;
    assert!(!r.degraded && !r.cached);

    // Service absent: network errors, retried, then degraded.
    let down = client("http://127.0.0.1:1");
    let r = down.intelligence("x", false, false).await;
    assert!(r.degraded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_opens_rejects_and_recovers_through_half_open() {
    let s = stub().await;
    let c = client(&s.url);
    s.mode.store(FAIL_500, Ordering::SeqCst);
    for i in 0..5 {
        assert!(
            c.intelligence(&format!("ctx {i}"), false, false)
                .await
                .degraded
        );
    }
    assert_eq!(s.calls.load(Ordering::SeqCst), 5);
    assert_eq!(c.status()["circuit_breaker"], "open");
    // Open: rejected without calling the service.
    let r = c.intelligence("ctx 6", false, false).await;
    assert!(r
        .reason
        .as_deref()
        .unwrap()
        .contains("circuit breaker open"));
    assert_eq!(s.calls.load(Ordering::SeqCst), 5);
    // After the recovery timeout: half-open; a failing trial reopens it.
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(c.status()["circuit_breaker"], "half_open");
    assert!(c.intelligence("ctx 7", false, false).await.degraded);
    assert_eq!(s.calls.load(Ordering::SeqCst), 6);
    assert_eq!(c.status()["circuit_breaker"], "open");
    // Recovered service: two successful trials close it.
    tokio::time::sleep(Duration::from_millis(350)).await;
    s.mode.store(OK, Ordering::SeqCst);
    assert!(!c.intelligence("ctx 8", false, false).await.degraded);
    assert_eq!(c.status()["circuit_breaker"], "half_open");
    assert!(!c.intelligence("ctx 9", false, false).await.degraded);
    assert_eq!(c.status()["circuit_breaker"], "closed");
}
