//! Codegen gateway round trip (HTTP-less: `CodegenGateway::call` → Kafka → a local responder → Kafka →
//! the gateway's response consumer) p50/p99, and DLQ monitor ingestion in messages/s.
//!
//! Run: `OMNINODE_BENCH_KAFKA=127.0.0.1:9092 cargo bench --bench codegen_dlq` (PostgreSQL from
//! OMNINODE_TEST_PG_URL, default postgres://postgres@127.0.0.1:5432). Skipped under `cargo test`.

mod common;

use std::time::{Duration, Instant};

use omninode_bridge::codegen::schemas::{self, Operation};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message};
use serde_json::{json, Value};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !common::bench_requested("codegen_dlq") {
        return;
    }
    let bench = common::BenchEnv::new("codegen").await;
    let (brokers, env) = (bench.brokers.clone(), bench.env.clone());
    let mut settings = bench.settings.clone();
    settings.dlq.alert_threshold = 1_000_000;
    let services = omninode_bridge::app::Services::start(settings)
        .await
        .expect("services");
    let state = services.state.clone();

    // A local responder: answers every analyze request at once.
    let (b, session) = (brokers.clone(), uuid::Uuid::new_v4().to_string());
    let s2 = session.clone();
    let responder = tokio::spawn(async move {
        let c: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &b)
            .set(
                "group.id",
                format!("bench-responder-{}", uuid::Uuid::new_v4()),
            )
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "2000")
            .set("heartbeat.interval.ms", "500")
            .set("fetch.wait.max.ms", "5")
            .create()
            .expect("consumer");
        c.subscribe(&["omninode_codegen_request_analyze_v1"])
            .expect("subscribe");
        let p: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &b)
            .set("linger.ms", "0")
            .create()
            .expect("producer");
        loop {
            let Ok(m) = c.recv().await else { continue };
            let v: Value =
                serde_json::from_slice(m.payload().unwrap_or_default()).unwrap_or_default();
            let req = &v["payload"];
            if req["session_id"] != s2.as_str() {
                continue;
            }
            let answer = json!({"correlation_id": req["correlation_id"], "session_id": s2, "analysis_result": {},
                                "confidence": 0.5, "processing_time_ms": 1.0});
            let _ = p
                .send(
                    FutureRecord::to("omninode_codegen_response_analyze_v1")
                        .key("r")
                        .payload(&answer.to_string()),
                    Duration::from_secs(5),
                )
                .await;
        }
    });
    tokio::time::sleep(Duration::from_secs(4)).await; // consumers join
    let request = |i: usize| {
        let body = json!({"session_id": session, "prd_content": format!("request {i}")});
        schemas::parse_request(Operation::Analyze, body.to_string().as_bytes()).expect("valid")
    };
    for i in 0..20 {
        state
            .codegen
            .call(request(i), &Default::default())
            .await
            .expect("warm-up round trip");
    }
    let mut rtts = Vec::new();
    for i in 0..300 {
        let started = Instant::now();
        state
            .codegen
            .call(request(i), &Default::default())
            .await
            .expect("round trip");
        rtts.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    rtts.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| omninode_bridge::telemetry::nearest_rank(&rtts, p);
    println!(
        "codegen gateway round trip (300 sequential analyze requests, local responder): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pct(50.0),
        pct(99.0),
        rtts[rtts.len() - 1]
    );
    responder.abort();

    // DLQ monitor: 5,000 records on one DLQ topic, timed until all are stored and counted.
    let dlq_topic = format!("{env}.omninode_bridge.onex.evt.metadata-stamp-validated.v1.dlq");
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .expect("producer");
    let n = 5000;
    let started = Instant::now();
    let sends: Vec<_> = (0..n)
        .map(|i| {
            let value = format!("poison {i}");
            let p = p.clone();
            let t = dlq_topic.clone();
            async move {
                p.send(
                    FutureRecord::to(&t).key("k").payload(&value),
                    Duration::from_secs(10),
                )
                .await
            }
        })
        .collect();
    for r in futures_util::future::join_all(sends).await {
        r.expect("produce");
    }
    loop {
        let c = state.dlq.counts(&dlq_topic).await.expect("counts");
        if c.total >= n {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "DLQ monitor too slow: {}",
            c.total
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    println!("DLQ monitor: {n} records produced, consumed, stored and counted in {secs:.2} s = {:.0} messages/s", n as f64 / secs);
    services.stop().await;
    bench.drop_db().await;
}
