//! Poison never blocks a pipeline (issue 12, part 3). Each test puts one event or message in a
//! pipeline that can never be processed as it is, and checks that everything behind it flows within a
//! deadline, that the bad one is quarantined where an operator sees it (health, metrics, the DLQ page,
//! the DLQ API) and that it can be redriven once the cause is fixed.
//!
//! - `oversized_ids_*`: an event whose workflow id is 20 KB (PostgreSQL refused its `event_logs` index
//!   entry, and the relay retried that batch forever) is recorded with its indexed text cut to 512
//!   characters; the events after it reach `event_logs` and the reducer. Both backends.
//! - `refused_event_*`: an event the event log refuses for good (a constraint the test adds) and an
//!   undecodable outbox row are moved to `event_outbox_dead`, their batch neighbours flow, the count
//!   shows in `/health`, `/metrics` and the dashboard; after the constraint is dropped, a redrive
//!   delivers the event. Both backends.
//! - `oversized_kafka_message_*`: an outbox event over `kafka.message_max_bytes` is quarantined, later
//!   events reach Kafka and the tracer; after a restart with a larger limit, a redrive publishes it.
//! - `consumer_*`: the consumer-group runner with a handler that refuses one message for good
//!   dead-letters exactly that one (or skips it, by policy) and processes the rest of the partition;
//!   transient failures are retried, never dead-lettered.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{assert_error, brokers, kafka_settings, unique_env, Backend, FreshDb, TestApp};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use omninode_bridge::config::Settings;
use omninode_bridge::events::topics::EventKind;
use omninode_bridge::events::EventFactory;
use omninode_bridge::kafka::consumer::{
    BatchHandler, ConsumerSpec, HandlerError, Incoming, Poison, PoisonPolicy,
};
use omninode_bridge::kafka::producer::KafkaPublisher;
use omninode_bridge::store::outbox::{self, NewOutboxEvent};
use omninode_bridge::store::sql_types::DbJson;
use omninode_bridge::store::{event_logs, Db};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{json, Value};

const DEADLINE: Duration = Duration::from_secs(30);

both_backends!(
    oversized_ids_are_cut_and_later_events_flow,
    refused_event_is_quarantined_visible_and_redrivable,
    oversized_kafka_message_is_quarantined_then_redriven,
);

async fn wait_until(what: &str, within: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn db(app: &TestApp) -> &Db {
    &app.services().state.db
}

/// A `metadata-stamp-created` outbox row for `payload`, as the stamping service would write it.
fn stamp_event(app: &TestApp, payload: Value) -> NewOutboxEvent {
    let events = EventFactory::new(&app.services().state.settings.kafka.topic_env);
    let env = events.envelope(
        EventKind::MetadataStampCreated,
        None::<uuid::Uuid>,
        None,
        payload,
    );
    events.outbox_row(EventKind::MetadataStampCreated, &env)
}

fn stamp_payload(namespace: &str, workflow_id: &str) -> Value {
    json!({
        "stamp_id": uuid::Uuid::new_v4(),
        "file_hash": "00",
        "namespace": namespace,
        "file_path": "poison.txt",
        "file_size": 7,
        "file_type": "text",
        "workflow_id": workflow_id,
    })
}

async fn wait_logged(app: &TestApp, event_id: uuid::Uuid) {
    wait_until(
        &format!("event {event_id} in event_logs"),
        DEADLINE,
        async || event_logs::count_for(db(app), event_id).await.unwrap() == 1,
    )
    .await;
}

async fn wait_total(app: &TestApp, ns: &str, want: i64) {
    wait_until(
        &format!("{ns} aggregated {want} stamps"),
        DEADLINE,
        async || {
            let (status, body) = app.get_path(&format!("/api/v1/aggregations/{ns}")).await;
            status == 200 && body["data"]["total_stamps"] == want
        },
    )
    .await;
}

async fn health_dead(app: &TestApp) -> Value {
    let (status, body) = app.get("/health").await;
    assert_eq!(status, 200, "{body}");
    body["data"]["components"]["event_bus"]["outbox_dead"].clone()
}

async fn wait_dead(app: &TestApp, want: i64) {
    wait_until(
        &format!("{want} quarantined outbox rows"),
        DEADLINE,
        async || health_dead(app).await == want,
    )
    .await;
}

async fn prometheus(app: &TestApp) -> String {
    app.client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

// ------------------------------------------------------------ indexed text is cut to fit

async fn oversized_ids_are_cut_and_later_events_flow(backend: Backend) {
    let app = TestApp::start_with(backend, |s| s.reducer.batch_size = 10).await;
    // 20 KB of random text, as in the report (PostgreSQL: "index row requires 26688 bytes"); random,
    // so PostgreSQL cannot compress the index entry below its limit.
    let huge: String = (0..625)
        .map(|_| uuid::Uuid::new_v4().simple().to_string())
        .collect();
    let poisoned = stamp_event(&app, stamp_payload("poison.huge", &huge));
    let poisoned_id = poisoned.event_id.0;
    outbox::insert(db(&app), vec![poisoned]).await.unwrap();

    let mut later = Vec::new();
    for i in 0..3 {
        let (s, b) = app
            .post_json(
                "/stamp",
                &json!({"content": format!("after the poison {i}"), "namespace": "poison.after"}),
            )
            .await;
        assert_eq!(s, 200, "{b}");
        later.push(b["data"]["stamp_id"].as_str().unwrap().to_owned());
    }

    // Everything after the poisoned event arrives: in event_logs and in the reducer.
    wait_total(&app, "poison.after", 3).await;
    wait_logged(&app, poisoned_id).await;
    let rows = event_logs::recent(db(&app), 50).await.unwrap();
    for id in &later {
        assert!(
            rows.iter().any(|r| r.payload.0["stamp_id"] == id.as_str()),
            "stamp {id} not in event_logs"
        );
    }
    // The poisoned one too: its session id (the workflow id) cut to 512 characters, the payload whole.
    let row = rows
        .iter()
        .find(|r| r.event_id.0 == poisoned_id)
        .expect("poisoned event recorded");
    assert_eq!(row.session_id.as_deref(), Some(&huge[..512]));
    assert_eq!(row.payload.0["workflow_id"], huge.as_str());
    wait_total(&app, "poison.huge", 1).await;
    // And it is still found by the trace of its (cut) session id.
    let (s, trace) = app
        .get_path(&format!("/api/v1/traces/sessions/{}", &huge[..512]))
        .await;
    assert_eq!(s, 200, "{trace}");
    assert_eq!(
        trace["data"]["events"].as_array().map(Vec::len),
        Some(1),
        "{trace}"
    );
    assert_eq!(health_dead(&app).await, 0);
    app.stop().await;
}

// ------------------------------------------------------------ quarantine and redrive (embedded)

/// Make the event log refuse events of one namespace, as a database refuses a value for good.
async fn refuse_namespace(app: &TestApp, ns: &str) {
    match app.db.backend {
        Backend::Postgres => {
            let mut c = AsyncPgConnection::establish(&app.db.url).await.unwrap();
            c.batch_execute(&format!(
                "ALTER TABLE event_logs ADD CONSTRAINT poison_refused \
                 CHECK (namespace IS DISTINCT FROM '{ns}')"
            ))
            .await
            .unwrap();
        }
        Backend::Sqlite => sqlite_exec(
            &app.db.url,
            &format!(
                "CREATE TRIGGER poison_refused BEFORE INSERT ON event_logs \
                 WHEN NEW.namespace = '{ns}' BEGIN SELECT RAISE(ABORT, 'poison refused'); END;"
            ),
        ),
    }
}

async fn accept_all(app: &TestApp) {
    match app.db.backend {
        Backend::Postgres => {
            let mut c = AsyncPgConnection::establish(&app.db.url).await.unwrap();
            c.batch_execute("ALTER TABLE event_logs DROP CONSTRAINT poison_refused")
                .await
                .unwrap();
        }
        Backend::Sqlite => sqlite_exec(&app.db.url, "DROP TRIGGER poison_refused;"),
    }
}

fn sqlite_exec(url: &str, sql: &str) {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let path = url.trim_start_matches("sqlite://");
    let mut c = diesel::SqliteConnection::establish(path).unwrap();
    c.batch_execute(&format!("PRAGMA busy_timeout = 10000; {sql}"))
        .unwrap();
}

async fn refused_event_is_quarantined_visible_and_redrivable(backend: Backend) {
    let app = TestApp::start_with(backend, |s| s.reducer.batch_size = 10).await;
    refuse_namespace(&app, "poison.refused").await;

    // One batch: good, refused, undecodable, good.
    let good1 = stamp_event(&app, stamp_payload("poison.ok", "w1"));
    let refused = stamp_event(&app, stamp_payload("poison.refused", "w2"));
    let good2 = stamp_event(&app, stamp_payload("poison.ok", "w3"));
    let mut garbage = stamp_event(&app, json!({}));
    garbage.envelope = DbJson(json!({"not": "an envelope"}));
    let (good_ids, refused_id, garbage_id) = (
        [good1.event_id.0, good2.event_id.0],
        refused.event_id.0,
        garbage.event_id.0,
    );
    outbox::insert(db(&app), vec![good1, refused, garbage, good2])
        .await
        .unwrap();
    let (s, b) = app
        .post_json(
            "/stamp",
            &json!({"content": "after", "namespace": "poison.ok"}),
        )
        .await;
    assert_eq!(s, 200, "{b}");

    // Everything else flows: both neighbours and the later stamp, in event_logs and the reducer.
    for id in good_ids {
        wait_logged(&app, id).await;
    }
    wait_total(&app, "poison.ok", 3).await;
    assert_eq!(
        event_logs::count_for(db(&app), refused_id).await.unwrap(),
        0
    );

    // Visible: health, Prometheus, the DLQ API and the dashboard's DLQ page.
    wait_dead(&app, 2).await;
    let (_, h) = app.get("/health").await;
    assert_eq!(
        h["data"]["status"], "healthy",
        "quarantine alone does not degrade: {h}"
    );
    // The recorder is process-wide (tests run in parallel): the gauge is there, the counter counts both.
    let text = prometheus(&app).await;
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    assert!(value("outbox_dead_events") >= 0.0);
    assert!(value("outbox_quarantined_total") >= 2.0);
    let (s, listed) = app.get_path("/api/v1/dlq/outbox").await;
    assert_eq!(s, 200, "{listed}");
    assert_eq!(listed["data"]["total"], 2, "{listed}");
    let events = listed["data"]["events"].as_array().unwrap();
    let by_id = |id: uuid::Uuid| {
        events
            .iter()
            .find(|e| e["event_id"] == id.to_string())
            .cloned()
            .unwrap_or_else(|| panic!("{id} not listed: {listed}"))
    };
    let r = by_id(refused_id);
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .starts_with("event_logs refused the event"),
        "{r}"
    );
    assert_eq!(r["event_type"], "metadata-stamp-created");
    let g = by_id(garbage_id);
    assert!(
        g["error"]
            .as_str()
            .unwrap()
            .starts_with("undecodable envelope"),
        "{g}"
    );
    let page = app
        .client
        .get(app.url("/dashboard/dlq"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("id=\"outbox-dead\""), "no outbox section");
    assert!(
        page.contains("event_logs refused the event"),
        "row not shown"
    );

    // Bad redrive requests name the field.
    let (s, b) = app
        .post_path("/api/v1/dlq/outbox/redrive", json!({"limit": 0}))
        .await;
    assert_error(s, &b, 422, "VALIDATION_ERROR", Some("limit"));
    let (s, b) = app
        .post_path("/api/v1/dlq/outbox/redrive", json!({"seqs": []}))
        .await;
    assert_error(s, &b, 422, "VALIDATION_ERROR", Some("seqs"));

    // Fix the cause, redrive just the refused event: it is delivered and aggregated.
    accept_all(&app).await;
    let seq = r["seq"].as_i64().unwrap();
    let (s, b) = app
        .post_path("/api/v1/dlq/outbox/redrive", json!({"seqs": [seq]}))
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["redriven"], 1, "{b}");
    assert_eq!(b["data"]["remaining"], 1, "{b}");
    wait_logged(&app, refused_id).await;
    wait_total(&app, "poison.refused", 1).await;

    // The undecodable row, redriven, is quarantined again (with a new seq) and blocks nothing.
    let (s, b) = app
        .post_path("/api/v1/dlq/outbox/redrive", json!({"limit": 10}))
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["redriven"], 1, "{b}");
    let (s, b) = app
        .post_json(
            "/stamp",
            &json!({"content": "after redrive", "namespace": "poison.ok"}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    wait_total(&app, "poison.ok", 4).await;
    wait_dead(&app, 1).await;
    let (_, listed) = app.get_path("/api/v1/dlq/outbox").await;
    assert_eq!(
        listed["data"]["events"][0]["event_id"],
        garbage_id.to_string()
    );
    assert_ne!(listed["data"]["events"][0]["seq"], g["seq"], "{listed}");
    app.stop().await;
}

// ------------------------------------------------------------ Kafka

async fn oversized_kafka_message_is_quarantined_then_redriven(backend: Backend) {
    let (brokers, env) = (brokers(), unique_env());
    let fresh = FreshDb::new(backend).await;
    let mut settings = common::settings_for(&fresh.url);
    kafka_settings(&mut settings, &brokers, &env);
    settings.kafka.message_max_bytes = 16_384;
    let app = TestApp::start_on(fresh.share(), settings.clone()).await;

    // 40 KB of file_path: over this instance's 16 KiB message limit.
    let mut payload = stamp_payload("poison.kafka", "w");
    payload["file_path"] = json!("p/".repeat(20_000));
    let big = stamp_event(&app, payload);
    let big_id = big.event_id.0;
    outbox::insert(db(&app), vec![big]).await.unwrap();
    let (s, b) = app
        .post_json("/stamp", &json!({"content": "after the big one"}))
        .await;
    assert_eq!(s, 200, "{b}");
    let after = b["data"]["stamp_id"].as_str().unwrap().to_owned();

    // The later event goes through Kafka to the tracer; the big one is quarantined.
    wait_until("the later stamp in event_logs", DEADLINE, async || {
        event_logs::recent(db(&app), 50)
            .await
            .unwrap()
            .iter()
            .any(|r| r.payload.0["stamp_id"] == after.as_str())
    })
    .await;
    wait_dead(&app, 1).await;
    let (_, listed) = app.get_path("/api/v1/dlq/outbox").await;
    let error = listed["data"]["events"][0]["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        error.starts_with("kafka refused the message for good"),
        "{error}"
    );
    assert!(
        listed["data"]["events"][0]["envelope_bytes"]
            .as_u64()
            .unwrap()
            > 40_000,
        "{listed}"
    );
    app.stop().await;

    // The fix: a larger limit. Restart on the same database and redrive.
    settings.kafka.message_max_bytes = 1_000_000;
    let app = TestApp::start_on(fresh.share(), settings).await;
    let (s, b) = app.post_path("/api/v1/dlq/outbox/redrive", json!({})).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["redriven"], 1, "{b}");
    assert_eq!(b["data"]["remaining"], 0, "{b}");
    wait_logged(&app, big_id).await;
    assert_eq!(health_dead(&app).await, 0);
    app.stop().await;
    fresh.drop_db().await;
}

/// A handler that refuses one value for good (or fails transiently the first `flaky` times).
struct Picky {
    poison: &'static str,
    flaky: Mutex<u32>,
    policy: PoisonPolicy,
    processed: Arc<Mutex<Vec<String>>>,
}

impl BatchHandler for Picky {
    fn handle(
        &self,
        batch: &[Incoming],
    ) -> impl std::future::Future<Output = Result<Vec<(usize, Poison)>, HandlerError>> + Send {
        let values: Vec<String> = batch
            .iter()
            .map(|m| String::from_utf8_lossy(m.value.as_deref().unwrap_or_default()).into_owned())
            .collect();
        let transient = {
            let mut left = self.flaky.lock().unwrap();
            let fail = *left > 0;
            *left = left.saturating_sub(1);
            fail
        };
        let processed = self.processed.clone();
        let poison = self.poison;
        async move {
            if transient {
                return Err(HandlerError::Transient("database unavailable".into()));
            }
            if values.iter().any(|v| v == poison) {
                return Err(HandlerError::Permanent(format!("{poison} refused")));
            }
            processed.lock().unwrap().extend(values);
            Ok(Vec::new())
        }
    }

    fn poison_policy(&self) -> PoisonPolicy {
        self.policy
    }
}

async fn run_picky(policy: PoisonPolicy) -> (Vec<String>, Vec<(String, String, String)>) {
    let (brokers, env) = (brokers(), unique_env());
    let mut settings = Settings::load_from(None, Vec::<(String, String)>::new()).unwrap();
    kafka_settings(&mut settings, &brokers, &env);
    omninode_bridge::kafka::admin::create_topics(&settings.kafka)
        .await
        .unwrap();
    let topic = EventFactory::new(&env)
        .topics
        .name(EventKind::MetadataStampCreated);
    let dlq_topic = format!("{topic}.dlq");

    // One key: one partition, in order. The poison sits in the middle of one batch.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    let values = ["m0", "m1", "m2", "POISON", "m4", "m5", "m6"];
    for v in values {
        producer
            .send(
                FutureRecord::to(&topic).key("k").payload(v),
                Duration::from_secs(5),
            )
            .await
            .expect("produce");
    }

    let processed = Arc::new(Mutex::new(Vec::new()));
    let handler = Picky {
        poison: "POISON",
        flaky: Mutex::new(2),
        policy,
        processed: processed.clone(),
    };
    let spec = ConsumerSpec {
        group_id: format!("{env}-picky"),
        topics: vec![topic.clone()],
        batch_max: 100,
        batch_wait: Duration::from_millis(500),
        from_latest: false,
        fetch_wait_ms: 100,
    };
    let dlq = KafkaPublisher::new(&settings.kafka).unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let runner = tokio::spawn({
        let (kafka, token) = (settings.kafka.clone(), shutdown.clone());
        async move { omninode_bridge::kafka::consumer::run(&kafka, spec, handler, dlq, token).await }
    });

    // Every message but the poison is processed, in order (retries may repeat a prefix).
    wait_until("the partition to be processed", DEADLINE, async || {
        processed.lock().unwrap().last().map(String::as_str) == Some("m6")
    })
    .await;
    let seen = processed.lock().unwrap().clone();
    let mut unique: Vec<String> = Vec::new();
    for v in seen {
        if !unique.contains(&v) {
            unique.push(v);
        }
    }

    // Stop the runner: it finishes the batch (dead-lettering included) before it stops.
    shutdown.cancel();
    runner.await.unwrap().unwrap();

    // Everything the runner dead-lettered sits before a sentinel we append to the DLQ topic now.
    producer
        .send(
            FutureRecord::to(&dlq_topic).key("k").payload("SENTINEL"),
            Duration::from_secs(5),
        )
        .await
        .expect("produce sentinel");
    let reader: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", format!("{env}-reader"))
        .create()
        .unwrap();
    let mut partitions = TopicPartitionList::new();
    partitions
        .add_partition_offset(&dlq_topic, 0, Offset::Beginning)
        .unwrap();
    reader.assign(&partitions).unwrap();
    let mut dead = Vec::new();
    let until = tokio::time::Instant::now() + DEADLINE;
    loop {
        let m = match tokio::time::timeout_at(until, reader.recv()).await {
            Ok(Ok(m)) => m,
            other => panic!("DLQ topic not read up to the sentinel: {:?}", other.err()),
        };
        let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
        if value == "SENTINEL" {
            break;
        }
        let header = |k: &str| {
            m.headers()
                .and_then(|h| h.iter().find(|h| h.key == k))
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default()
        };
        dead.push((
            value,
            header("__connect.errors.exception.class.name"),
            header("__connect.errors.exception.message"),
        ));
    }
    (unique, dead)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_permanent_error_goes_to_dlq_and_the_partition_moves_on() {
    let (processed, dead) = run_picky(PoisonPolicy::DeadLetter).await;
    assert_eq!(processed, ["m0", "m1", "m2", "m4", "m5", "m6"]);
    assert_eq!(
        dead,
        [(
            "POISON".to_owned(),
            "omninode.bridge.PermanentProcessingError".to_owned(),
            "POISON refused".to_owned()
        )]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_that_skips_poison_moves_on_without_dead_letters() {
    let (processed, dead) = run_picky(PoisonPolicy::Skip).await;
    assert_eq!(processed, ["m0", "m1", "m2", "m4", "m5", "m6"]);
    assert!(dead.is_empty(), "{dead:?}");
}

/// A redrive with nothing quarantined answers zeros; unknown fields are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redrive_of_nothing_is_a_no_op() {
    let app = TestApp::start(Backend::Sqlite).await;
    let (s, b) = app.post_path("/api/v1/dlq/outbox/redrive", json!({})).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"], json!({"redriven": 0, "remaining": 0}));
    let (s, b) = app
        .post_path("/api/v1/dlq/outbox/redrive", json!({"bogus": 1}))
        .await;
    assert_error(s, &b, 422, "VALIDATION_ERROR", None);
    app.stop().await;
}
