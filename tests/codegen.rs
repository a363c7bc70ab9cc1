//! The codegen gateway: request published and answered by a test responder (through a real broker and
//! on the in-process bus), 504 without a responder, responses for unknown correlation ids ignored,
//! two instances, schema-invalid messages dead-lettered, session status tracked.

mod common;

use std::time::{Duration, Instant};

use common::{assert_error, brokers, Backend, FreshDb, TestApp};
use omninode_bridge::events::bus::BusEvent;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde_json::{json, Value};

fn kafka(s: &mut omninode_bridge::config::Settings, brokers: &str, env: &str) {
    s.kafka.brokers = brokers.to_owned();
    s.kafka.topic_env = env.to_owned();
    s.kafka.create_topics = true;
    s.kafka.consumer_group = format!("{env}-group");
    s.kafka.session_timeout_ms = 2000;
    s.codegen.response_timeout_ms = 15_000;
}

fn consumer(brokers: &str, topic: &str) -> StreamConsumer {
    let c: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("test-{}", uuid::Uuid::new_v4()))
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "2000")
        .set("heartbeat.interval.ms", "500")
        .set("fetch.wait.max.ms", "10")
        .create()
        .unwrap();
    c.subscribe(&[topic]).unwrap();
    c
}

/// Answer every analyze request whose session is `session` (first an unrelated response for an
/// unknown correlation id, which the gateway must ignore).
fn spawn_responder(brokers: String, session: String) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let c = consumer(&brokers, "omninode_codegen_request_analyze_v1");
        let p: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .create()
            .unwrap();
        loop {
            let Ok(m) = c.recv().await else { continue };
            let v: Value =
                serde_json::from_slice(m.payload().unwrap_or_default()).unwrap_or_default();
            let req = if v.get("payload").is_some() {
                v["payload"].clone()
            } else {
                v.clone()
            };
            if req["session_id"] != session.as_str() {
                continue;
            }
            assert_eq!(
                m.key(),
                Some(req["correlation_id"].as_str().unwrap().as_bytes()),
                "keyed by correlation id"
            );
            let unknown = json!({"correlation_id": uuid::Uuid::new_v4(), "session_id": session, "analysis_result": {},
                                 "confidence": 0.1, "processing_time_ms": 1.0});
            let answer = json!({"correlation_id": req["correlation_id"], "session_id": session,
                                "analysis_result": {"summary": "ok", "prd": req["prd_content"]},
                                "confidence": 0.9, "processing_time_ms": 12.5});
            for body in [unknown, answer] {
                p.send(
                    FutureRecord::to("omninode_codegen_response_analyze_v1")
                        .key("r")
                        .payload(&body.to_string()),
                    Duration::from_secs(5),
                )
                .await
                .unwrap();
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_answered_across_instances_and_time_out_without_a_responder() {
    let brokers = brokers();
    let env = format!("c{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let db = FreshDb::new(Backend::Postgres).await;
    let mut s1 = common::settings_for(&db.url);
    kafka(&mut s1, &brokers, &env);
    let mut s2 = s1.clone();
    s2.codegen.response_timeout_ms = 2000;
    let shared = db.share();
    let a = TestApp::start_on(db, s1).await;
    let b = TestApp::start_on(shared, s2).await;
    tokio::time::sleep(Duration::from_secs(3)).await; // response consumers join

    let session = uuid::Uuid::new_v4().to_string();
    let responder = spawn_responder(brokers.clone(), session.clone());
    for app in [&a, &b] {
        let started = Instant::now();
        let (status, body) = app.post_path("/api/v1/codegen/analyze", &json!({"session_id": session, "prd_content": "Build a reducer node", "analysis_type": "quick"})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"]["analysis_result"]["summary"], "ok");
        assert_eq!(
            body["data"]["analysis_result"]["prd"],
            "Build a reducer node"
        );
        assert_eq!(body["data"]["confidence"], 0.9);
        assert_eq!(body["data"]["schema_version"], "1.0");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
    responder.abort();

    // Nobody answers pattern requests: 504 naming the correlation id.
    let cid = uuid::Uuid::new_v4();
    let started = Instant::now();
    let (st, body) = b
        .post_path(
            "/api/v1/codegen/pattern",
            &json!({"correlation_id": cid, "node_description": "a cache", "node_type": "effect"}),
        )
        .await;
    assert_error(st, &body, 504, "CODEGEN_TIMEOUT", Some("correlation_id"));
    assert!(body["message"].as_str().unwrap().contains(&cid.to_string()));
    assert!(
        started.elapsed() >= Duration::from_secs(2) && started.elapsed() < Duration::from_secs(6)
    );

    // Validation: unknown operation, unknown field, bound violated.
    let post = |path: &str, body: Value| {
        let req = a.client.post(a.url(path)).json(&body);
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (st, body) = post("/api/v1/codegen/compile", json!({})).await;
    assert_error(st, &body, 404, "UNKNOWN_OPERATION", Some("operation"));
    let (st, body) = post(
        "/api/v1/codegen/pattern",
        json!({"node_description": "x", "node_type": "effect", "limit": 21}),
    )
    .await;
    assert_error(st, &body, 422, "VALIDATION_ERROR", Some("limit"));
    let (st, body) = post(
        "/api/v1/codegen/analyze",
        json!({"prd_content": "x", "surprise": 1}),
    )
    .await;
    assert_error(st, &body, 422, "VALIDATION_ERROR", Some("surprise"));
    let (st, body) = post(
        "/api/v1/codegen/validate",
        json!({"code_content": "fn main() {}", "node_type": "gizmo"}),
    )
    .await;
    assert_error(st, &body, 422, "VALIDATION_ERROR", Some("node_type"));

    // Session status events are tracked.
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    for (status, pct) in [("processing", 30), ("completed", 100)] {
        let ev = json!({"session_id": session, "status": status, "progress_percentage": pct, "message": format!("{status}!"),
                        "timestamp": chrono::Utc::now().to_rfc3339()});
        p.send(
            FutureRecord::to("omninode_codegen_status_session_v1")
                .key(session.as_str())
                .payload(&ev.to_string()),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = a
            .client
            .get(a.url(&format!("/api/v1/codegen/sessions/{session}")))
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        if v["data"]["history"].as_array().map(|h| h.len()) == Some(2) {
            assert_eq!(v["data"]["status"], "completed");
            assert_eq!(v["data"]["progress_percentage"], 100);
            break;
        }
        assert!(Instant::now() < deadline, "session status not tracked: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let r = a
        .client
        .get(a.url(&format!(
            "/api/v1/codegen/sessions/{}",
            uuid::Uuid::new_v4()
        )))
        .send()
        .await
        .unwrap();
    let st = r.status().as_u16();
    assert_error(
        st,
        &r.json().await.unwrap(),
        404,
        "SESSION_NOT_FOUND",
        Some("session_id"),
    );

    // A schema-invalid message on a codegen topic goes to the operation's DLQ with the error.
    let marker = uuid::Uuid::new_v4().to_string();
    let bad = json!({"correlation_id": uuid::Uuid::new_v4(), "session_id": session, "prd_content": "x", "analysis_type": "deep"});
    let dlq = consumer(&brokers, "omninode_codegen_dlq_analyze_v1");
    p.send(
        FutureRecord::to("omninode_codegen_request_analyze_v1")
            .key(marker.as_str())
            .payload(&bad.to_string()),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let m = tokio::time::timeout_at(deadline, dlq.recv())
            .await
            .expect("dead letter within 30 s")
            .unwrap();
        if m.key() != Some(marker.as_bytes()) {
            continue;
        }
        let headers: std::collections::HashMap<String, String> = m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| {
                        (
                            h.key.to_owned(),
                            String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(
            headers["__connect.errors.topic"],
            "omninode_codegen_request_analyze_v1"
        );
        assert_eq!(
            headers["__connect.errors.exception.class.name"],
            "omninode.bridge.SchemaValidationError"
        );
        assert!(
            headers["__connect.errors.exception.message"].contains("analysis_type"),
            "{headers:?}"
        );
        break;
    }
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_profile_routes_responses_on_the_bus() {
    let app = TestApp::start_with(Backend::Sqlite, |s| s.codegen.response_timeout_ms = 1500).await;
    let state = app.services().state.clone();
    let mut rx = state.bus.subscribe();
    let bus = state.bus.clone();
    let responder = tokio::spawn(async move {
        while let Ok(ev) = rx.recv().await {
            if ev.topic != "omninode_codegen_request_mixin_v1" {
                continue;
            }
            let req = ev.envelope.payload.clone();
            let mut env = ev.envelope.clone();
            env.event_id = uuid::Uuid::new_v4();
            env.event_type = "codegen.response.mixin".into();
            env.payload = json!({"correlation_id": req["correlation_id"], "session_id": req["session_id"],
                                 "mixin_recommendations": [{"name": "MixinCaching"}], "total_recommendations": 1,
                                 "processing_time_ms": 3.0});
            bus.publish(BusEvent {
                topic: "omninode_codegen_response_mixin_v1".into(),
                key: String::new(),
                envelope: env,
            });
        }
    });
    let (st, body) = app
        .post_path(
            "/api/v1/codegen/mixin",
            &json!({"requirements": ["caching"], "node_type": "effect"}),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(
        body["data"]["mixin_recommendations"][0]["name"],
        "MixinCaching"
    );
    responder.abort();
    let (st, b) = app
        .post_path(
            "/api/v1/codegen/mixin",
            json!({"requirements": ["caching"], "node_type": "effect"}),
        )
        .await;
    assert_error(st, &b, 504, "CODEGEN_TIMEOUT", Some("correlation_id"));
    app.stop().await;
}
