//! The reducer end to end: exact per-namespace aggregates on both backends, idempotent under
//! redelivery, exact under concurrent writers, and across two instances sharing PostgreSQL and Kafka.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{assert_error, Backend, FreshDb, TestApp};
use omninode_bridge::events::EventFactory;
use omninode_bridge::reducer::core::StampFact;
use omninode_bridge::reducer::Reducer;
use serde_json::{json, Value};

/// Poll `GET /api/v1/aggregations/{ns}` until `total_stamps == want` (at most 15 s).
async fn wait_total(app: &TestApp, ns: &str, want: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = app.get_path(&format!("/api/v1/aggregations/{ns}")).await;
        if status == 200 && body["data"]["total_stamps"] == want {
            return body["data"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "aggregate of {ns} did not reach {want}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

both_backends!(
    aggregates_are_exact_per_namespace,
    redelivery_and_concurrent_writers_stay_exact
);

async fn aggregates_are_exact_per_namespace(backend: Backend) {
    let app = TestApp::start_with(backend, |s| s.reducer.batch_size = 10).await;
    let namespaces = ["agg.alpha", "agg.beta", "agg.gamma"];
    let mut expected = std::collections::HashMap::new();
    for i in 0..45 {
        let ns = namespaces[i % 3];
        let content = format!("content number {i} {}", "x".repeat(i));
        let path = if i % 2 == 0 {
            format!("f{i}.md")
        } else {
            format!("f{i}.zip")
        };
        let (s, b) = app
            .post_json(
                "/stamp",
                &json!({"content": content, "namespace": ns, "file_path": path}),
            )
            .await;
        assert_eq!(s, 200, "{b}");
        let e = expected.entry(ns).or_insert((0i64, 0i64));
        e.0 += 1;
        e.1 += content.len() as i64;
    }
    // Replays add nothing.
    app.post_json(
        "/stamp",
        &json!({"content": "content number 0 ", "namespace": "agg.alpha", "file_path": "f0.md"}),
    )
    .await;
    for ns in namespaces {
        let (stamps, bytes) = expected[ns];
        let agg = wait_total(&app, ns, stamps).await;
        assert_eq!(agg["total_bytes"], bytes, "{ns}: {agg}");
        assert_eq!(agg["distinct_file_types"], 2, "{agg}");
        assert_eq!(agg["file_types"], json!(["archive", "document"]));
        assert_eq!(agg["fsm_state"], "persisted");
        assert!(agg["first_seen"].is_string() && agg["last_seen"].is_string());
        assert!(agg["window"]["start"].is_string() && agg["window"]["end"].is_string());
        assert!(agg["throughput_per_second"].as_f64().unwrap() > 0.0);
    }
    // Nothing arrives late: a marker stamped after everything above is aggregated, and then the
    // totals are still exactly what they were.
    let (s, b) = app
        .post_json(
            "/stamp",
            &json!({"content": "marker", "namespace": "agg.marker"}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    wait_total(&app, "agg.marker", 1).await;
    for ns in namespaces {
        let (_, agg) = app.get_path(&format!("/api/v1/aggregations/{ns}")).await;
        assert_eq!(agg["data"]["total_stamps"], expected[ns].0, "{ns}: {agg}");
        assert_eq!(agg["data"]["total_bytes"], expected[ns].1, "{ns}: {agg}");
    }
    // The list and the original's routes agree.
    let (_, list) = app.get_path("/api/v1/aggregations").await;
    assert_eq!(
        list["data"]["total"], 4,
        "three namespaces and the marker: {list}"
    );
    let (_, q) = app
        .post_path("/aggregation/query", &json!({"namespaces": ["agg.beta"]}))
        .await;
    assert_eq!(
        q["data"]["aggregations"][0]["total_stamps"],
        expected["agg.beta"].0
    );
    let (_, snap) = app.get_path("/state/snapshot?namespace=agg.gamma").await;
    assert_eq!(snap["data"]["total_bytes"], expected["agg.gamma"].1);

    // Errors.
    let (s, b) = app.get_path("/api/v1/aggregations/never.seen").await;
    assert_error(s, &b, 404, "AGGREGATION_NOT_FOUND", Some("namespace"));
    let (s, b) = app.get_path("/api/v1/aggregations/Bad.NS").await;
    assert_error(s, &b, 400, "NAMESPACE_INVALID", Some("namespace"));
    let (s, b) = app
        .post_path("/aggregation/query", &json!({"namespace": 5}))
        .await;
    assert_error(s, &b, 422, "VALIDATION_ERROR", Some("namespace"));
    let (s, b) = app
        .post_path("/aggregation/query", &json!({"limit": 0}))
        .await;
    assert_error(s, &b, 422, "VALIDATION_ERROR", Some("limit"));

    // A restart keeps the totals exact.
    let db = app.db.share();
    let settings = common::settings_for(&db.url);
    let expected_alpha = expected["agg.alpha"];
    let TestApp {
        server,
        services,
        db: owned_db,
        ..
    } = app;
    server.stop(true).await;
    if let Some(s) = services {
        s.stop().await;
    }
    let app = TestApp::start_on(db, settings).await;
    for i in 0..5 {
        app.post_json("/stamp", &json!({"content": format!("after restart {i}"), "namespace": "agg.alpha", "file_path": "r.md"})).await;
    }
    let agg = wait_total(&app, "agg.alpha", expected_alpha.0 + 5).await;
    assert_eq!(
        agg["total_bytes"],
        expected_alpha.1 + 5 * "after restart 0".len() as i64
    );
    app.stop().await;
    owned_db.drop_db().await;
}

fn fact(ns: &str, size: i64, ty: &str) -> StampFact {
    StampFact {
        event_id: uuid::Uuid::new_v4(),
        namespace: ns.into(),
        file_size: size,
        file_type: ty.into(),
        workflow_id: Some(format!("wf-{}", size % 7)),
        at: chrono::Utc::now(),
    }
}

async fn redelivery_and_concurrent_writers_stay_exact(backend: Backend) {
    let app = TestApp::start(backend).await;
    let state = &app.services().state;
    let reducer = |batch: usize| {
        let mut s = state.settings.reducer.clone();
        s.batch_size = batch;
        Reducer::new(
            state.db.clone(),
            EventFactory::new("dev"),
            s,
            Arc::new(tokio::sync::Notify::new()),
        )
    };
    let facts: Vec<StampFact> = (0..25)
        .map(|i| {
            fact(
                "redeliver.ns",
                i,
                if i % 2 == 0 { "document" } else { "image" },
            )
        })
        .collect();
    let r = reducer(10);
    assert_eq!(r.apply(&facts).await.unwrap(), 25);
    // The same events again (a redelivery), alone and mixed into a new batch: no double counting.
    assert_eq!(r.apply(&facts).await.unwrap(), 0);
    let mut mixed = facts[..5].to_vec();
    mixed.push(fact("redeliver.ns", 1000, "archive"));
    assert_eq!(r.apply(&mixed).await.unwrap(), 1);
    let agg = wait_total(&app, "redeliver.ns", 26).await;
    assert_eq!(agg["total_bytes"], (0..25).sum::<i64>() + 1000);
    assert_eq!(agg["distinct_file_types"], 3);
    assert_eq!(agg["distinct_workflows"], 7);

    // Eight writers on one namespace at once: optimistic-locking conflicts are retried, totals exact.
    let mut tasks = Vec::new();
    for w in 0..8 {
        let r = reducer(5);
        tasks.push(tokio::spawn(async move {
            let facts: Vec<StampFact> = (0..40)
                .map(|i| fact("hot.ns", w * 100 + i, "document"))
                .collect();
            r.apply(&facts).await.unwrap()
        }));
    }
    let mut counted = 0;
    for t in tasks {
        counted += t.await.unwrap();
    }
    assert_eq!(counted, 320);
    let agg = wait_total(&app, "hot.ns", 320).await;
    let want_bytes: i64 = (0..8).flat_map(|w| (0..40).map(move |i| w * 100 + i)).sum();
    assert_eq!(agg["total_bytes"], want_bytes);
    assert!(agg["version"].as_i64().unwrap() >= 8, "{agg}");
    app.stop().await;
}

/// Two instances share PostgreSQL and Kafka (one consumer group): each namespace's aggregate is exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_with_kafka_stay_exact() {
    let brokers = std::env::var("OMNINODE_TEST_KAFKA").expect(
        "OMNINODE_TEST_KAFKA must name a Kafka broker (scripts/test.sh starts tansu and sets it)",
    );
    let env = format!("r{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let db = FreshDb::new(Backend::Postgres).await;
    let configure = |s: &mut omninode_bridge::config::Settings| {
        s.kafka.brokers = brokers.clone();
        s.kafka.topic_env = env.clone();
        s.kafka.create_topics = true;
        s.kafka.consumer_group = format!("{env}-group");
        s.kafka.session_timeout_ms = 2000;
    };
    let mut s1 = common::settings_for(&db.url);
    configure(&mut s1);
    let mut s2 = s1.clone();
    s2.http.workers = 1;
    let shared = db.share();
    let a = TestApp::start_on(db, s1).await;
    let b = TestApp::start_on(shared, s2).await;
    let mut want = std::collections::HashMap::<&str, (i64, i64)>::new();
    for i in 0..60 {
        let ns = ["two.a", "two.b", "two.c", "two.d"][i % 4];
        let content = format!("two instances {i}");
        let app = if i % 2 == 0 { &a } else { &b };
        let (s, body) = app
            .post_json("/stamp", &json!({"content": content, "namespace": ns}))
            .await;
        assert_eq!(s, 200, "{body}");
        let e = want.entry(ns).or_default();
        e.0 += 1;
        e.1 += content.len() as i64;
    }
    for (ns, (stamps, bytes)) in &want {
        let agg = wait_total_within(&a, ns, *stamps, Duration::from_secs(60)).await;
        assert_eq!(agg["total_bytes"], *bytes);
    }
    b.stop().await;
    a.stop().await;
}

async fn wait_total_within(app: &TestApp, ns: &str, want: i64, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let res = app
            .client
            .get(app.url(&format!("/api/v1/aggregations/{ns}")))
            .send()
            .await
            .unwrap();
        let body: Value = res.json().await.unwrap();
        if body["data"]["total_stamps"] == want {
            return body["data"].clone();
        }
        assert!(
            body["data"]["total_stamps"].as_i64().unwrap_or(0) <= want,
            "over-counted {ns}: {body}"
        );
        assert!(
            Instant::now() < deadline,
            "aggregate of {ns} did not reach {want}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
