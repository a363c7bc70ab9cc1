//! The event backbone through a real Kafka-protocol broker (tansu, started by scripts/test.sh; or any
//! Kafka named by OMNINODE_TEST_KAFKA). Each test uses its own topic environment, so tests share one
//! broker without seeing each other's topics.

mod common;

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{brokers, kafka_settings, unique_env, Backend, FreshDb, TestApp};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde_json::{json, Value};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn topic(env: &str, slug: &str) -> String {
    format!("{env}.omninode_bridge.onex.evt.{slug}.v1")
}

fn consumer(brokers: &str, topics: &[&str]) -> StreamConsumer {
    let c: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("test-{}", uuid::Uuid::new_v4()))
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "2000")
        .set("heartbeat.interval.ms", "500")
        .set("topic.metadata.refresh.interval.ms", "1000")
        .create()
        .expect("consumer");
    c.subscribe(topics).expect("subscribe");
    c
}

struct Received {
    key: Option<String>,
    value: Value,
    headers: HashMap<String, String>,
}

async fn receive(c: &StreamConsumer, want: usize, within: Duration) -> Vec<Received> {
    let deadline = tokio::time::Instant::now() + within;
    let mut out = Vec::new();
    while out.len() < want {
        let m = match tokio::time::timeout_at(deadline, c.recv()).await {
            Ok(Ok(m)) => m,
            Ok(Err(e)) => panic!("consume failed: {e}"),
            Err(_) => break,
        };
        let mut headers = HashMap::new();
        if let Some(h) = m.headers() {
            for h in h.iter() {
                headers.insert(
                    h.key.to_owned(),
                    String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                );
            }
        }
        out.push(Received {
            key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            value: serde_json::from_slice(m.payload().unwrap_or_default()).unwrap_or(Value::Null),
            headers,
        });
    }
    out
}

async fn wait_for_event_logs(app: &TestApp, event_ids: &[uuid::Uuid], within: Duration) {
    let db = &app.services().state.db;
    let deadline = Instant::now() + within;
    loop {
        let mut missing = 0;
        for id in event_ids {
            let n = omninode_bridge::store::event_logs::count_for(db, *id)
                .await
                .unwrap();
            assert!(n <= 1, "event {id} recorded {n} times");
            if n == 0 {
                missing += 1;
            }
        }
        if missing == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} of {} events not in event_logs",
            event_ids.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn stamp_events_reach_kafka(backend: Backend) {
    let brokers = brokers();
    let env = unique_env();
    let app = TestApp::start_with(backend, |s| kafka_settings(s, &brokers, &env)).await;
    let created = topic(&env, "metadata-stamp-created");
    let validated = topic(&env, "metadata-stamp-validated");
    let batch = topic(&env, "metadata-batch-processed");
    let c = consumer(&brokers, &[&created, &validated, &batch]);

    let cid = uuid::Uuid::new_v4().to_string();
    let res = app
        .client
        .post(app.api("/stamp"))
        .header("X-Correlation-ID", &cid)
        .header("traceparent", TRACEPARENT)
        .json(&json!({"content": "to kafka", "namespace": "kafka.ns"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let stamp: Value = res.json().await.unwrap();
    app.post_json(
        "/validate",
        &json!({"content": stamp["data"]["stamped_content"]}),
    )
    .await;
    app.post_json(
        "/batch",
        &json!({"items": [{"content": "k1"}, {"content": "k2"}], "namespace": "kafka.b"}),
    )
    .await;

    let got = receive(&c, 5, Duration::from_secs(30)).await;
    assert_eq!(got.len(), 5, "events received: {}", got.len());
    let first = got
        .iter()
        .find(|r| r.value["payload"]["stamp_id"] == stamp["data"]["stamp_id"])
        .expect("stamp-created event");
    assert_eq!(first.value["envelope_version"], "1.0");
    assert_eq!(first.value["event_type"], "metadata-stamp-created");
    assert_eq!(first.value["correlation_id"], cid.as_str());
    assert_eq!(first.value["partition_key"], "kafka.ns");
    assert_eq!(
        first.value["payload"]["file_hash"],
        stamp["data"]["file_hash"]
    );
    assert_eq!(
        first.key.as_deref(),
        Some("kafka.ns"),
        "key = partition_key"
    );
    assert_eq!(first.headers["event_type"], "metadata-stamp-created");
    assert_eq!(first.headers["correlation_id"], cid);
    assert_eq!(first.headers["traceparent"], TRACEPARENT);
    assert_eq!(first.value["metadata"]["traceparent"], TRACEPARENT);
    assert_eq!(
        first.headers["event_id"],
        first.value["event_id"].as_str().unwrap()
    );
    // Keys of the other events: partition_key (the namespace) for validations, the request's
    // correlation id for batches (they have no single namespace).
    let validated_event = got
        .iter()
        .find(|r| r.value["event_type"] == "metadata-stamp-validated")
        .unwrap();
    assert_eq!(
        validated_event.key.as_deref(),
        Some("omninode.services.metadata")
    );
    assert_eq!(
        validated_event.headers["event_type"],
        "metadata-stamp-validated"
    );
    let batch_event = got
        .iter()
        .find(|r| r.value["event_type"] == "metadata-batch-processed")
        .unwrap();
    assert_eq!(
        batch_event.key.as_deref(),
        batch_event.value["correlation_id"].as_str()
    );
    assert_eq!(batch_event.value["payload"]["total_items"], 2);
    let types: HashSet<&str> = got
        .iter()
        .filter_map(|r| r.value["event_type"].as_str())
        .collect();
    assert_eq!(types.len(), 3, "{types:?}");

    let ids: Vec<uuid::Uuid> = got
        .iter()
        .map(|r| uuid::Uuid::parse_str(r.value["event_id"].as_str().unwrap()).unwrap())
        .collect();
    wait_for_event_logs(&app, &ids, Duration::from_secs(30)).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stamp_events_reach_kafka_postgres() {
    stamp_events_reach_kafka(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stamp_events_reach_kafka_sqlite() {
    stamp_events_reach_kafka(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_message_is_dead_lettered_and_the_consumer_moves_on() {
    let brokers = brokers();
    let env = unique_env();
    let app = TestApp::start_with(Backend::Postgres, |s| kafka_settings(s, &brokers, &env)).await;
    let created = topic(&env, "metadata-stamp-created");
    let dlq = format!("{created}.dlq");
    let dlq_consumer = consumer(&brokers, &[&dlq]);

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    producer
        .send(
            FutureRecord::to(&created)
                .key("bad")
                .payload("this is not JSON"),
            Duration::from_secs(5),
        )
        .await
        .expect("produce poison");
    let (s, stamp) = app
        .post_json("/stamp", &json!({"content": "after the poison"}))
        .await;
    assert_eq!(s, 200);

    let got = receive(&dlq_consumer, 1, Duration::from_secs(30)).await;
    assert_eq!(got.len(), 1, "poison message not dead-lettered");
    let h = &got[0].headers;
    assert_eq!(h["__connect.errors.topic"], created);
    assert!(h.contains_key("__connect.errors.partition"));
    assert!(h.contains_key("__connect.errors.offset"));
    assert_eq!(
        h["__connect.errors.exception.class.name"],
        "omninode.bridge.NotJsonError"
    );
    assert!(!h["__connect.errors.exception.message"].is_empty());
    assert_eq!(got[0].key.as_deref(), Some("bad"));

    // The consumer moved on: the valid event after the poison is recorded.
    let db = &app.services().state.db;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows = omninode_bridge::store::event_logs::recent(db, 50)
            .await
            .unwrap();
        if rows
            .iter()
            .any(|r| r.payload.0["stamp_id"] == stamp["data"]["stamp_id"])
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "event after the poison message not recorded"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivered_events_are_recorded_once() {
    let brokers = brokers();
    let env = unique_env();
    let app = TestApp::start_with(Backend::Postgres, |s| kafka_settings(s, &brokers, &env)).await;
    let created = topic(&env, "metadata-stamp-created");
    let (_, stamp) = app
        .post_json("/stamp", &json!({"content": "once only"}))
        .await;
    let c = consumer(&brokers, &[&created]);
    let got = receive(&c, 1, Duration::from_secs(30)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].value["payload"]["stamp_id"],
        stamp["data"]["stamp_id"]
    );
    // What a relay retry after a crash would do: publish the same envelope again, twice.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    let body = serde_json::to_vec(&got[0].value).unwrap();
    for _ in 0..2 {
        producer
            .send(
                FutureRecord::to(&created)
                    .key("omninode.services.metadata")
                    .payload(&body),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
    }
    let again = receive(&c, 2, Duration::from_secs(30)).await;
    assert_eq!(again.len(), 2);
    let id = uuid::Uuid::parse_str(got[0].value["event_id"].as_str().unwrap()).unwrap();
    // A marker after the duplicates on the same partition (same key: the default namespace): once
    // the tracer recorded it, it has read the duplicates too.
    let (s, marker) = app
        .post_json("/stamp", &json!({"content": "marker after the duplicates"}))
        .await;
    assert_eq!(s, 200, "{marker}");
    let got = receive(&c, 1, Duration::from_secs(30)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].value["payload"]["stamp_id"],
        marker["data"]["stamp_id"]
    );
    let marker_id = uuid::Uuid::parse_str(got[0].value["event_id"].as_str().unwrap()).unwrap();
    wait_for_event_logs(&app, &[id, marker_id], Duration::from_secs(30)).await;
    let n = omninode_bridge::store::event_logs::count_for(&app.services().state.db, id)
        .await
        .unwrap();
    assert_eq!(n, 1, "redelivered event recorded {n} times");
    app.stop().await;
}

struct Broker {
    child: Child,
}

fn start_broker(port: u16) -> Broker {
    let bin = std::env::var("TANSU_BIN")
        .expect("TANSU_BIN must point at the tansu binary (scripts/test.sh sets it)");
    let url = format!("tcp://127.0.0.1:{port}");
    let child = Command::new(bin)
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
            "--storage-engine",
            "memory://tansu/",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start tansu");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "tansu did not start on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    Broker { child }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Wait until `event_logs` holds a `metadata-stamp-created` row for every stamp id, and never two.
async fn wait_for_stamp_events(app: &TestApp, stamp_ids: &HashSet<String>, within: Duration) {
    let db = &app.services().state.db;
    let deadline = Instant::now() + within;
    loop {
        let rows = omninode_bridge::store::event_logs::recent(db, 10_000)
            .await
            .unwrap();
        let created_rows: Vec<_> = rows
            .iter()
            .filter(|r| r.topic.ends_with("metadata-stamp-created.v1"))
            .collect();
        let distinct: HashSet<String> = created_rows
            .iter()
            .filter_map(|r| r.payload.0["stamp_id"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(
            distinct.len(),
            created_rows.len(),
            "an event was recorded twice"
        );
        if stamp_ids.iter().all(|id| distinct.contains(id)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "event_logs has {} of {} stamp events",
            stamp_ids.iter().filter(|id| distinct.contains(*id)).count(),
            stamp_ids.len()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Stop the broker during a burst of stamps: stamping keeps answering, and after the broker returns
/// every event arrives and is recorded exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_outage_during_burst_loses_nothing() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let broker = start_broker(port);
    let brokers = format!("127.0.0.1:{port}");
    let env = unique_env();
    let db = FreshDb::new(Backend::Postgres).await;
    let mut settings = common::settings_for(&db.url);
    kafka_settings(&mut settings, &brokers, &env);
    let app = TestApp::start_on(db, settings).await;

    let mut stamp_ids = HashSet::new();
    for i in 0..20 {
        let (s, b) = app
            .post_json("/stamp", &json!({"content": format!("before {i}")}))
            .await;
        assert_eq!(s, 200);
        stamp_ids.insert(b["data"]["stamp_id"].as_str().unwrap().to_owned());
    }
    // tansu keeps topics in memory: let the tracer consume these before the broker (and its data) goes.
    wait_for_stamp_events(&app, &stamp_ids, Duration::from_secs(60)).await;
    let (_, health) = app.get("/health").await;
    assert_eq!(
        health["data"]["components"]["event_bus"]["status"], "healthy",
        "{health}"
    );
    assert_eq!(
        health["data"]["components"]["event_bus"]["brokers"], 1,
        "{health}"
    );
    drop(broker); // broker down
    for i in 0..40 {
        let started = Instant::now();
        let (s, b) = app
            .post_json("/stamp", &json!({"content": format!("during {i}")}))
            .await;
        assert_eq!(
            s, 200,
            "stamping must keep answering while Kafka is down: {b}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "stamp took {:?}",
            started.elapsed()
        );
        stamp_ids.insert(b["data"]["stamp_id"].as_str().unwrap().to_owned());
    }
    let (_, health) = app.get("/health").await;
    assert_eq!(
        health["data"]["components"]["event_bus"]["status"], "degraded",
        "{health}"
    );
    assert!(health["data"]["components"]["event_bus"]["error"]
        .as_str()
        .unwrap()
        .contains("kafka unreachable"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    // The broker returns (empty: memory storage), topics are recreated, and the relay catches up.
    let _broker = start_broker(port);
    let (created, _) =
        omninode_bridge::kafka::admin::create_topics(&app.services().state.settings.kafka)
            .await
            .expect("recreate topics");
    assert!(!created.is_empty());
    for i in 0..20 {
        let (s, b) = app
            .post_json("/stamp", &json!({"content": format!("after {i}")}))
            .await;
        assert_eq!(s, 200);
        stamp_ids.insert(b["data"]["stamp_id"].as_str().unwrap().to_owned());
    }
    // Every one of the 80 events is recorded downstream, exactly once.
    wait_for_stamp_events(&app, &stamp_ids, Duration::from_secs(90)).await;
    let c = consumer(&brokers, &[&topic(&env, "metadata-stamp-created")]);
    let got = receive(&c, 60, Duration::from_secs(30)).await;
    let seen: HashSet<String> = got
        .iter()
        .filter_map(|r| r.value["payload"]["stamp_id"].as_str().map(str::to_owned))
        .collect();
    assert!(
        seen.len() >= 60,
        "only {} of the 60 events after the outage are on the topic",
        seen.len()
    );
    app.stop().await;
}

#[test]
fn topics_create_is_idempotent() {
    let brokers = brokers();
    let env = unique_env();
    for round in 0..2 {
        let out = Command::new(env!("CARGO_BIN_EXE_omninode-bridge"))
            .args(["topics", "create"])
            .env("OMNINODE__KAFKA__BROKERS", &brokers)
            .env("OMNINODE__KAFKA__TOPIC_ENV", &env)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "round {round}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        if round == 0 {
            // The 32 topics of this environment are new; the 14 shared codegen topics may already
            // exist (other tests create them concurrently).
            let created: usize = stdout
                .split_whitespace()
                .nth(1)
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            assert!((32..=46).contains(&created), "{stdout}");
            assert!(stdout.matches(&env).count() >= 32, "{stdout}");
        } else {
            assert!(stdout.contains("created 0 topic(s)"), "{stdout}");
        }
    }
    let c: rdkafka::consumer::BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "meta")
        .create()
        .unwrap();
    let meta = c.fetch_metadata(None, Duration::from_secs(10)).unwrap();
    let partitions: HashMap<String, usize> = meta
        .topics()
        .iter()
        .map(|t| (t.name().to_owned(), t.partitions().len()))
        .collect();
    assert_eq!(partitions[&topic(&env, "metadata-stamp-created")], 3);
    assert_eq!(
        partitions[&format!("{}.dlq", topic(&env, "metadata-stamp-created"))],
        1
    );
    assert_eq!(partitions["omninode_codegen_status_session_v1"], 6);
    assert_eq!(partitions["omninode_codegen_request_analyze_v1"], 3);
    assert_eq!(partitions["omninode_codegen_dlq_mixin_v1"], 1);

    let out = Command::new(env!("CARGO_BIN_EXE_omninode-bridge"))
        .args(["topics", "create"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("kafka.brokers"));
}
