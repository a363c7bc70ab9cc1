//! Workflows end to end on both backends: the default contract's steps, FSM transitions and events,
//! the stamp really stored, 202 + polling, the original's routes, bad input, and recovery of a
//! workflow interrupted mid-way.

mod common;

use std::time::{Duration, Instant};

use common::{assert_error, Backend, TestApp};
use serde_json::json;

both_backends!(
    workflow_runs_all_steps_and_stores_the_stamp,
    accepted_workflows_finish_and_bad_input_is_refused,
    interrupted_workflow_resumes_after_its_last_completed_step
);

async fn workflow_runs_all_steps_and_stores_the_stamp(backend: Backend) {
    let app = TestApp::start(backend).await;
    let mut rx = app.services().state.bus.subscribe();
    let (s, b) = app
        .post_path(
            "/api/v1/workflows?wait=true",
            json!({
        "content": "Workflow content", "namespace": "wf.test", "stamp_type": "rich",
        "file_path": "docs/w.md", "enable_intelligence": true, "metadata": {"author": "ada"}}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let d = &b["data"];
    assert_eq!(d["state"], "completed");
    let steps: Vec<(&str, &str, i64)> = d["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap(),
                s["status"].as_str().unwrap(),
                s["attempts"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(steps.len(), 6, "{steps:?}");
    assert!(
        steps.iter().all(|(_, st, a)| *st == "completed" && *a == 1),
        "{steps:?}"
    );
    assert_eq!(steps[0].0, "validate_input");
    assert_eq!(steps[5].0, "complete");
    let transitions: Vec<(&str, &str)> = d["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["from_state"].as_str().unwrap(),
                t["to_state"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        transitions,
        [("pending", "processing"), ("processing", "completed")]
    );
    let stamp = &d["result"]["stamp"];
    assert!(stamp["stamped_content"]
        .as_str()
        .unwrap()
        .contains("ONEX_METADATA_START"));
    assert_eq!(
        d["result"]["intelligence"]["degraded"], true,
        "no OnexTree configured: degraded, workflow continues"
    );

    // The stamp is really stored, with the intelligence data persisted on it.
    let hash = stamp["file_hash"].as_str().unwrap();
    let (s, stored) = app
        .get_path(&format!(
            "/api/v1/metadata-stamping/stamp/{hash}?namespace=wf.test"
        ))
        .await;
    assert_eq!(s, 200, "{stored}");
    assert_eq!(stored["data"]["id"], stamp["stamp_id"]);
    assert_eq!(stored["data"]["intelligence_data"]["degraded"], true);
    assert_eq!(
        stored["data"]["stamp_data"]["metadata"]["workflow_id"],
        d["workflow_id"]
    );

    // Events: started, transitions, hash, each step, the stamp, completed — all correlated.
    assert_eq!(
        d["correlation_id"], d["workflow_id"],
        "events carry the workflow id as correlation id"
    );
    let cid = d["correlation_id"].as_str().unwrap().to_owned();
    let mut kinds = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while let Ok(Ok(ev)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        if ev.envelope.correlation_id.map(|c| c.to_string()) == Some(cid.clone()) {
            kinds.push(ev.envelope.event_type.clone());
        }
        if kinds.iter().any(|k| k == "stamp-workflow-completed") {
            break;
        }
    }
    for want in [
        "stamp-workflow-started",
        "workflow-state-transition",
        "blake3-hash-generated",
        "workflow-step-completed",
        "metadata-stamp-created",
        "stamp-workflow-completed",
    ] {
        assert!(
            kinds.iter().any(|k| k == want),
            "missing {want} in {kinds:?}"
        );
    }
    assert_eq!(
        kinds
            .iter()
            .filter(|k| *k == "workflow-step-completed")
            .count(),
        6,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.first().map(String::as_str),
        Some("stamp-workflow-started")
    );

    // The reducer counts the workflow.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, agg) = app.get_path("/api/v1/aggregations/wf.test").await;
        if agg["data"]["distinct_workflows"] == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "{agg}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.stop().await;
}

async fn accepted_workflows_finish_and_bad_input_is_refused(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (s, b) = app
        .post_path(
            "/api/v1/workflows",
            json!({"content_base64": "aGVsbG8gd29ybGQ=", "namespace": "wf.async"}),
        )
        .await;
    assert_eq!(s, 202, "{b}");
    let id = b["data"]["workflow_id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, w) = app.get_path(&format!("/api/v1/workflows/{id}")).await;
        if w["data"]["state"] == "completed" {
            assert_eq!(
                w["data"]["result"]["hash"]["file_hash"],
                blake3::hash(b"hello world").to_hex().as_str()
            );
            break;
        }
        assert!(Instant::now() < deadline, "{w}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The original's routes.
    let (s, b) = app
        .post_path(
            "/workflow/submit",
            json!({"content": "compat", "namespace": "wf.async"}),
        )
        .await;
    assert_eq!(s, 202, "{b}");
    let id2 = b["data"]["workflow_id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (s, w) = app.get_path(&format!("/workflow/{id2}/status")).await;
        assert_eq!(s, 200, "{w}");
        let state = w["data"]["state"].as_str().unwrap_or_default().to_owned();
        assert_ne!(state, "failed", "{w}");
        if state == "completed" {
            break;
        }
        assert!(Instant::now() < deadline, "still {state}: {w}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, list) = app
        .get_path("/api/v1/workflows?namespace=wf.async&limit=10")
        .await;
    assert_eq!(list["data"]["total"], 2);

    for (body, status, code, field) in [
        (json!({"content": ""}), 422, "VALIDATION_ERROR", "content"),
        (json!({}), 422, "VALIDATION_ERROR", "content"),
        (
            json!({"content": "a", "content_base64": "YQ=="}),
            422,
            "VALIDATION_ERROR",
            "content",
        ),
        (
            json!({"content_base64": "not base64!!"}),
            422,
            "VALIDATION_ERROR",
            "content_base64",
        ),
        (
            json!({"content_base64": "//4="}),
            422,
            "VALIDATION_ERROR",
            "content_base64",
        ),
        (
            json!({"content": "a", "contract": "nope"}),
            400,
            "UNKNOWN_CONTRACT",
            "contract",
        ),
        (
            json!({"content": "a", "namespace": "Bad NS"}),
            400,
            "NAMESPACE_INVALID",
            "namespace",
        ),
        (
            json!({"content": "a", "stamp_type": "fancy"}),
            422,
            "VALIDATION_ERROR",
            "stamp_type",
        ),
        (
            json!({"content": "a", "surprise": 1}),
            422,
            "VALIDATION_ERROR",
            "surprise",
        ),
    ] {
        let (s, b) = app.post_path("/api/v1/workflows", body.clone()).await;
        assert_error(s, &b, status, code, Some(field));
    }
    let (s, b) = app.get_path("/api/v1/workflows/not-a-uuid").await;
    assert_error(s, &b, 400, "INVALID_WORKFLOW_ID", Some("workflow_id"));
    let (s, b) = app
        .get_path(&format!("/api/v1/workflows/{}", uuid::Uuid::new_v4()))
        .await;
    assert_error(s, &b, 404, "WORKFLOW_NOT_FOUND", Some("workflow_id"));
    let (s, b) = app.get_path("/api/v1/workflows?state=weird").await;
    assert_error(s, &b, 422, "VALIDATION_ERROR", Some("state"));
    app.stop().await;
}

/// A workflow left in `processing` with its first step done (the process died) is taken over when its
/// lease has expired, resumed after that step, and completed.
async fn interrupted_workflow_resumes_after_its_last_completed_step(backend: Backend) {
    use omninode_bridge::store::sql_types::{DbJson, DbTs};
    use omninode_bridge::store::workflows as store;
    let app = TestApp::start(backend).await;
    let state = app.services().state.clone();
    let input = omninode_bridge::workflow::engine::WorkflowInput {
        content: "interrupted content".into(),
        file_path: None,
        content_type: None,
        namespace: "wf.recover".into(),
        stamp_type: "lightweight".into(),
        enable_intelligence: false,
        intelligence_context: None,
        metadata: Default::default(),
    };
    let wf = state
        .workflows
        .create("metadata_stamping", input, None)
        .await
        .unwrap();
    let db = &state.db;
    assert!(store::transition(
        db,
        wf.id.0,
        "pending",
        "processing",
        "started",
        Default::default(),
        vec![]
    )
    .await
    .unwrap());
    let long_ago = chrono::Utc::now() - chrono::Duration::hours(1);
    store::save_step(
        db,
        &store::StepRow {
            workflow_id: wf.id,
            name: "validate_input".into(),
            status: "completed".into(),
            attempts: 1,
            duration_ms: Some(0.1),
            error: None,
            output: Some(DbJson(json!({"content_bytes": 19}))),
            started_at: Some(DbTs(long_ago)),
            completed_at: Some(DbTs(long_ago)),
        },
        vec![],
    )
    .await
    .unwrap();
    // Hand it to a "crashed" instance whose lease expired long ago.
    let later = chrono::Utc::now() + chrono::Duration::hours(2);
    let claimed = store::claim_expired(db, "crashed-instance", later, long_ago, 1000)
        .await
        .unwrap();
    assert!(claimed.iter().any(|w| w.id == wf.id));
    assert!(state.workflows.recover().await.unwrap() >= 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, w) = app
            .get_path(&format!("/api/v1/workflows/{}", wf.id.0))
            .await;
        if w["data"]["state"] == "completed" {
            let steps = w["data"]["steps"].as_array().unwrap();
            assert_eq!(steps.len(), 6);
            let first = steps
                .iter()
                .find(|s| s["name"] == "validate_input")
                .unwrap();
            // Same instant (stored with microsecond precision); compared as times, not strings,
            // since the wire format drops trailing zeros of the fraction.
            let started = first["started_at"].as_str().unwrap();
            let started = chrono::DateTime::parse_from_rfc3339(started)
                .unwrap_or_else(|e| panic!("{started}: {e}"));
            assert_eq!(
                started.timestamp_micros(),
                long_ago.timestamp_micros(),
                "not run again: {started}"
            );
            assert!(w["data"]["result"]["stamp"]["stamp_id"].is_string());
            break;
        }
        assert!(Instant::now() < deadline, "{w}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.stop().await;
}
