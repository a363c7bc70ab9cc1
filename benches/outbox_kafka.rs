//! Events/s from the outbox to Kafka, against a raw rdkafka producer sending the same envelopes to the
//! same broker in the same run; and commit-to-consume latency of stamps through the whole path.
//!
//! Run: `OMNINODE_BENCH_KAFKA=127.0.0.1:9092 cargo bench --bench outbox_kafka`
//! (PostgreSQL from OMNINODE_TEST_PG_URL, default postgres://postgres@127.0.0.1:5432). Under
//! `cargo test` (no `--bench` argument) it only checks that it builds.

mod common;

use std::time::{Duration, Instant};

use omninode_bridge::events::topics::EventKind;
use omninode_bridge::events::EventFactory;
use omninode_bridge::kafka::producer::{envelope_headers, KafkaPublisher, OutgoingMessage};
use omninode_bridge::store::{outbox, Db};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::Message;

const EVENTS: usize = 20_000;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    omninode_bridge::telemetry::nearest_rank(sorted, p)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !common::bench_requested("outbox_kafka") {
        return;
    }
    let bench = common::BenchEnv::new("outbox").await;
    let (brokers, env) = (bench.brokers.clone(), bench.env.clone());
    let settings = bench.settings.clone();
    omninode_bridge::kafka::admin::create_topics(&settings.kafka)
        .await
        .expect("topics");

    let db = Db::new(&settings.database).expect("db");
    db.migrate().await.expect("migrate");
    let events = EventFactory::new(&env);
    let envelopes: Vec<_> = (0..EVENTS)
        .map(|i| {
            events.envelope(
                EventKind::MetadataStampCreated,
                Some(uuid::Uuid::new_v4()),
                Some(format!("bench.ns{}", i % 16)),
                serde_json::json!({"file_hash": format!("{i:064x}"), "namespace": format!("bench.ns{}", i % 16), "file_size": 1024}),
            )
        })
        .collect();
    let topic = events.topics.name(EventKind::MetadataStampCreated);

    // Baseline: the raw producer sends the envelopes straight to Kafka.
    let raw = KafkaPublisher::new(&settings.kafka).expect("producer");
    let bodies: Vec<(String, Vec<u8>)> = envelopes
        .iter()
        .map(|e| (e.kafka_key(), serde_json::to_vec(e).expect("json")))
        .collect();
    // Warm-up (connections, metadata, producer id) so neither side pays it in the timed part.
    raw.send_all(vec![OutgoingMessage {
        topic: &topic,
        key: "warm",
        value: b"{}",
        headers: Default::default(),
    }])
    .await
    .expect("warm-up");
    let started = Instant::now();
    for (chunk, envs) in bodies.chunks(500).zip(envelopes.chunks(500)) {
        raw.send_all(
            chunk
                .iter()
                .zip(envs)
                .map(|((key, value), env)| OutgoingMessage {
                    topic: &topic,
                    key,
                    value,
                    headers: envelope_headers(env),
                })
                .collect(),
        )
        .await
        .expect("raw send");
    }
    let raw_secs = started.elapsed().as_secs_f64();

    // The outbox path: rows committed to the outbox, then the relay publishes and deletes them.
    let rows: Vec<_> = envelopes
        .iter()
        .map(|e| events.outbox_row(EventKind::MetadataStampCreated, e))
        .collect();
    for chunk in rows.chunks(1000) {
        outbox::insert(&db, chunk.to_vec())
            .await
            .expect("outbox insert");
    }
    let relay_publisher = KafkaPublisher::new(&settings.kafka).expect("producer");
    relay_publisher
        .send_all(vec![OutgoingMessage {
            topic: &topic,
            key: "warm",
            value: b"{}",
            headers: Default::default(),
        }])
        .await
        .expect("warm-up");
    let sink = omninode_bridge::events::relay::Sink::Kafka {
        publisher: relay_publisher,
        bus: omninode_bridge::events::bus::EventBus::new(1024),
    };
    let started = Instant::now();
    let mut published = 0;
    while published < EVENTS {
        published += omninode_bridge::events::relay::publish_pending(&db, &sink)
            .await
            .expect("relay");
    }
    let outbox_secs = started.elapsed().as_secs_f64();

    println!(
        "machine: {} cores; events: {EVENTS} envelopes of ~{} bytes",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        bodies[0].1.len()
    );
    println!(
        "raw rdkafka producer : {:>9.0} events/s ({raw_secs:.2} s)",
        EVENTS as f64 / raw_secs
    );
    println!(
        "outbox → relay → Kafka: {:>9.0} events/s ({outbox_secs:.2} s)",
        EVENTS as f64 / outbox_secs
    );
    println!("ratio outbox/raw      : {:.2}", raw_secs / outbox_secs);

    // Latency: stamps through the service (commit → relay → Kafka → consumer), at a steady rate.
    let (services_settings, n) = (settings.clone(), 2_000usize);
    let services = omninode_bridge::app::Services::start(services_settings)
        .await
        .expect("services");
    let consumer: StreamConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", format!("bench-{}", uuid::Uuid::new_v4()))
        .set("auto.offset.reset", "latest")
        .set("fetch.wait.max.ms", "10")
        .set("session.timeout.ms", "2000")
        .set("heartbeat.interval.ms", "500")
        .create()
        .expect("consumer");
    consumer.subscribe(&[&topic]).expect("subscribe");
    // Let the consumer join before measuring.
    let _ = tokio::time::timeout(Duration::from_secs(5), consumer.recv()).await;
    let svc = services.state.stamping.clone();
    let ns = omninode_bridge::stamping::namespace::Namespace::parse("bench.latency").expect("ns");
    let producer = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / 1000));
        for i in 0..n {
            tick.tick().await;
            let svc = svc.clone();
            let ns = ns.clone();
            tokio::spawn(async move {
                let cmd = omninode_bridge::stamping::StampCommand {
                    content: format!("latency probe {i} {}", uuid::Uuid::new_v4()),
                    file_path: None,
                    namespace: ns,
                    stamp_type: omninode_bridge::stamping::core::StampType::Lightweight,
                    metadata: Default::default(),
                    protocol_version: None,
                };
                let _ = svc.stamp(cmd, &Default::default()).await;
            });
        }
    });
    let mut latencies = Vec::with_capacity(n);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while latencies.len() < n {
        let Ok(Ok(m)) = tokio::time::timeout_at(deadline, consumer.recv()).await else {
            break;
        };
        let v: serde_json::Value =
            serde_json::from_slice(m.payload().unwrap_or_default()).unwrap_or_default();
        if v["payload"]["namespace"] != "bench.latency" {
            continue;
        }
        // event_timestamp is taken when the row is prepared, just before the group commit.
        if let Some(ts) = v["event_timestamp"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        {
            let ms = (chrono::Utc::now() - ts.with_timezone(&chrono::Utc))
                .num_microseconds()
                .unwrap_or(0) as f64
                / 1000.0;
            latencies.push(ms);
        }
    }
    let _ = producer.await;
    latencies.sort_by(|a, b| a.total_cmp(b));
    println!(
        "stamp → Kafka consumer latency at 1000 stamps/s ({} events): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latencies.len(),
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        latencies.last().copied().unwrap_or(0.0)
    );
    services.stop().await;
    bench.drop_db().await;
}
