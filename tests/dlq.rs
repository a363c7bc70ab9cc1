//! The DLQ monitor through a real broker: counting (window and total), one alert per cooldown with the
//! webhook, malformed records counted, redrive (dry run and real) keeping the event id, reset.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{assert_error, brokers, Backend, TestApp};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde_json::{json, Value};

/// Produce one message (key and string value) and wait for its delivery.
async fn produce(producer: &FutureProducer, topic: &str, key: &str, value: &str) {
    producer
        .send(
            FutureRecord::to(topic).key(key).payload(value),
            Duration::from_secs(5),
        )
        .await
        .expect("produce");
}

/// A local webhook receiver recording every JSON body posted to it.
async fn webhook() -> (String, Arc<Mutex<Vec<Value>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    let server = actix_web::HttpServer::new(move || {
        let sink = sink.clone();
        actix_web::App::new().default_service(actix_web::web::to(
            move |body: actix_web::web::Json<Value>| {
                let sink = sink.clone();
                async move {
                    sink.lock().unwrap().push(body.into_inner());
                    actix_web::HttpResponse::Ok().finish()
                }
            },
        ))
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let addr = server.addrs()[0];
    tokio::spawn(server.run());
    (format!("http://{addr}/alerts"), got)
}

async fn stats(app: &TestApp) -> Value {
    let (_, v) = app.get_path("/api/v1/dlq/stats").await;
    v["data"].clone()
}

fn topic_stats(stats: &Value, topic: &str) -> Value {
    stats["topics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["topic"] == topic)
        .cloned()
        .unwrap_or(Value::Null)
}

async fn wait_until(what: &str, within: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_counts_alerts_once_and_redrives() {
    let brokers = brokers();
    let env = format!("d{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let (hook, received) = webhook().await;
    let app = TestApp::start_with(Backend::Postgres, |s| {
        s.kafka.brokers = brokers.clone();
        s.kafka.topic_env = env.clone();
        s.kafka.create_topics = true;
        s.kafka.consumer_group = format!("{env}-group");
        s.kafka.session_timeout_ms = 2000;
        s.dlq.alert_threshold = 3;
        s.dlq.window_secs = 900;
        s.dlq.cooldown_secs = 900;
        s.dlq.webhook_url = hook.clone();
    })
    .await;
    let created = format!("{env}.omninode_bridge.onex.evt.metadata-stamp-created.v1");
    let dlq_topic = format!("{created}.dlq");
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();

    // Five poison messages: the tracer dead-letters them, the monitor counts them, one alert fires.
    for i in 0..5 {
        produce(&producer, &created, "k", &format!("not json {i}")).await;
    }
    wait_until("5 DLQ records", Duration::from_secs(60), async || {
        topic_stats(&stats(&app).await, &dlq_topic)["total"] == 5
    })
    .await;
    let s = stats(&app).await;
    let t = topic_stats(&s, &dlq_topic);
    assert_eq!(t["in_window"], 5);
    assert_eq!(t["alerting"], true);
    assert!(
        t["recent_error"].as_str().unwrap().contains("not JSON"),
        "{t}"
    );
    wait_until("the webhook", Duration::from_secs(10), async || {
        !received.lock().unwrap().is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    {
        let got = received.lock().unwrap();
        assert_eq!(got.len(), 1, "exactly one alert: {got:?}");
        let alert = &got[0];
        assert_eq!(alert["alert_type"], "dlq_threshold_exceeded");
        assert_eq!(alert["topic"], dlq_topic.as_str());
        assert_eq!(alert["threshold"], 3);
        assert!(alert["count"].as_i64().unwrap() >= 3);
        assert_eq!(alert["severity"], "critical");
        assert!(alert["timestamp"].is_string() && alert["recent_error"].is_string());
    }
    assert_eq!(s["recent_alerts"].as_array().unwrap().len(), 1);

    // Within the cooldown: more failures, no second alert.
    for i in 0..2 {
        produce(&producer, &created, "k", &format!("still not json {i}")).await;
    }
    wait_until("7 DLQ records", Duration::from_secs(60), async || {
        topic_stats(&stats(&app).await, &dlq_topic)["total"] == 7
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        received.lock().unwrap().len(),
        1,
        "no second alert within the cooldown"
    );

    // A malformed DLQ record (no Connect headers, not UTF-8) is counted, not fatal.
    // (Codegen DLQ topics are shared by every instance on the broker: find ours by its key.)
    let codegen_dlq = "omninode_codegen_dlq_pattern_v1";
    let marker = uuid::Uuid::new_v4().to_string();
    producer
        .send(
            FutureRecord::<str, [u8]>::to(codegen_dlq)
                .key(marker.as_str())
                .payload(&[0xff, 0xfe, 0x00][..]),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    let malformed = async || -> Option<Value> {
        let v: Value = app
            .client
            .get(app.url(&format!(
                "/api/v1/dlq/messages?topic={codegen_dlq}&limit=1000"
            )))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        v["data"]["messages"]
            .as_array()?
            .iter()
            .find(|m| m["key"] == marker.as_str())
            .cloned()
    };
    wait_until(
        "the malformed record",
        Duration::from_secs(60),
        async || malformed().await.is_some(),
    )
    .await;
    let m = malformed().await.unwrap();
    assert_eq!(m["error_class"], "unknown");
    assert_eq!(m["original_topic"], Value::Null);
    assert!(
        topic_stats(&stats(&app).await, codegen_dlq)["total"]
            .as_i64()
            .unwrap()
            >= 1
    );

    // Redrive: a valid event that failed earlier sits in the DLQ with its Connect headers.
    let event_id = uuid::Uuid::new_v4();
    let envelope = json!({
        "event_id": event_id, "event_type": "metadata-stamp-created", "event_timestamp": "2025-01-01T00:00:00Z",
        "payload": {"namespace": "redrive.ns", "file_size": 10, "file_type": "document", "stamp_id": "s-1"},
    });
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: "event_type",
            value: Some("metadata-stamp-created"),
        })
        .insert(Header {
            key: "__connect.errors.topic",
            value: Some(created.as_str()),
        })
        .insert(Header {
            key: "__connect.errors.partition",
            value: Some("0"),
        })
        .insert(Header {
            key: "__connect.errors.offset",
            value: Some("0"),
        })
        .insert(Header {
            key: "__connect.errors.exception.class.name",
            value: Some("Transient"),
        })
        .insert(Header {
            key: "__connect.errors.exception.message",
            value: Some("database was down"),
        });
    producer
        .send(
            FutureRecord::to(&dlq_topic)
                .key("redrive.ns")
                .payload(&envelope.to_string())
                .headers(headers),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    let find = async || -> Option<Value> {
        let v: Value = app
            .client
            .get(app.url(&format!("/api/v1/dlq/messages?topic={dlq_topic}&limit=100")))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        v["data"]["messages"]
            .as_array()?
            .iter()
            .find(|m| m["error_message"] == "database was down")
            .cloned()
    };
    wait_until(
        "the redrivable record",
        Duration::from_secs(60),
        async || find().await.is_some(),
    )
    .await;
    let record = find().await.unwrap();
    assert_eq!(record["original_topic"], created.as_str());
    let id = record["id"].as_str().unwrap().to_owned();

    let redrive = |body: Value| {
        let client = app.client.clone();
        let url = app.url("/api/v1/dlq/redrive");
        async move {
            let r = client.post(url).json(&body).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (s, dry) = redrive(json!({"ids": [id], "dry_run": true})).await;
    assert_eq!(s, 200, "{dry}");
    assert_eq!(dry["data"]["matched"], 1);
    assert_eq!(dry["data"]["redriven"], 0);
    let (s, done) = redrive(json!({"ids": [id]})).await;
    assert_eq!(s, 200, "{done}");
    assert_eq!(done["data"]["redriven"], 1);
    // Delivered to the original topic with its event id: recorded once in event_logs, counted once.
    let db = &app.services().state.db;
    wait_until("the redriven event", Duration::from_secs(60), async || {
        omninode_bridge::store::event_logs::count_for(db, event_id)
            .await
            .unwrap()
            == 1
    })
    .await;
    let (_, again) = redrive(json!({"ids": [id]})).await;
    assert_eq!(again["data"]["matched"], 0, "already redriven");
    let (_, agg) = app.get_path("/api/v1/aggregations/redrive.ns").await;
    assert_eq!(agg["data"]["total_stamps"], 1);

    // Reset one topic: its counts start again from zero.
    let (_, r) = app
        .post_path("/api/v1/dlq/reset", &json!({"topic": dlq_topic}))
        .await;
    assert_eq!(r["data"]["reset"], json!([dlq_topic]));
    let t = topic_stats(&stats(&app).await, &dlq_topic);
    assert_eq!(
        (t["in_window"].as_i64(), t["total"].as_i64()),
        (Some(0), Some(0))
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_api_without_kafka_and_bad_input() {
    let app = TestApp::start(Backend::Sqlite).await;
    let s = stats(&app).await;
    assert_eq!(s["total"], 0);
    assert_eq!(s["threshold"], 10);
    let post = |path: &'static str, body: Value| {
        let client = app.client.clone();
        let url = app.url(path);
        async move {
            let r = client.post(url).json(&body).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (st, b) = post("/api/v1/dlq/redrive", json!({})).await;
    assert_error(st, &b, 422, "VALIDATION_ERROR", Some("ids"));
    let (st, b) = post("/api/v1/dlq/redrive", json!({"ids": ["not-a-uuid"]})).await;
    assert_error(st, &b, 422, "VALIDATION_ERROR", Some("ids[0]"));
    let (st, b) = post("/api/v1/dlq/redrive", json!({"topic": "x.dlq", "limit": 0})).await;
    assert_error(st, &b, 422, "VALIDATION_ERROR", Some("limit"));
    let (st, b) = post(
        "/api/v1/dlq/redrive",
        json!({"topic": "x.dlq", "dry_run": true}),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["data"]["matched"], 0);
    let (st, b) = post("/api/v1/dlq/redrive", json!({"topic": "x.dlq"})).await;
    assert_error(st, &b, 503, "KAFKA_UNAVAILABLE", None);
    let (st, b) = post("/api/v1/dlq/reset", json!({"topics": "x"})).await;
    assert_error(st, &b, 422, "VALIDATION_ERROR", Some("topics"));
    let (st, b) = app.get_path("/api/v1/dlq/messages?limit=0").await;
    assert_error(st, &b, 422, "VALIDATION_ERROR", Some("limit"));
    app.stop().await;
}
