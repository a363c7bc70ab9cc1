//! The workflow engine with test contracts against a local OnexTree stub: parallel steps overlap, a
//! failing step is retried and then succeeds, exhausted retries fail the workflow with the step and
//! error recorded, step and workflow timeouts.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{Backend, TestApp};
use omninode_bridge::events::EventFactory;
use omninode_bridge::intelligence::{ClientConfig, OnexTreeClient};
use omninode_bridge::workflow::contract::Contract;
use omninode_bridge::workflow::engine::{WorkflowEngine, WorkflowInput};
use serde_json::{json, Value};

/// An OnexTree stub: the first `fail_first` calls answer 500, every call waits `delay_ms`.
async fn onextree(fail_first: u32, delay_ms: u64) -> (String, Arc<AtomicU32>) {
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let server = actix_web::HttpServer::new(move || {
        let c = c.clone();
        actix_web::App::new().default_service(actix_web::web::to(move || {
            let c = c.clone();
            async move {
                let n = c.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                if n < fail_first {
                    actix_web::HttpResponse::InternalServerError().finish()
                } else {
                    actix_web::HttpResponse::Ok().json(json!({"status": "success", "data": {"data_quality": 0.9, "pattern_strength": 0.9}}))
                }
            }
        }))
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let url = format!("http://{}", server.addrs()[0]);
    tokio::spawn(server.run());
    (url, calls)
}

fn contract(workflow_timeout_ms: u64, intel: &str) -> Contract {
    let text = format!(
        r#"
name = "test_contract"
version = "1.0"
timeout_ms = {workflow_timeout_ms}
[fsm]
initial = "pending"
terminal = ["completed", "failed"]
transitions = [["pending", "processing"], ["pending", "failed"], ["processing", "completed"], ["processing", "failed"]]
[[steps]]
name = "validate_input"
kind = "validate_input"
[[steps]]
name = "hash_generation"
kind = "hash_generation"
depends_on = ["validate_input"]
[[steps]]
name = "onextree_intelligence"
kind = "onextree_intelligence"
depends_on = ["validate_input"]
{intel}
[[steps]]
name = "stamp_creation"
kind = "stamp_creation"
depends_on = ["hash_generation", "onextree_intelligence"]
"#
    );
    Contract::parse("test", &text).unwrap()
}

async fn run(app: &TestApp, url: &str, client_timeout_ms: u64, c: Contract) -> Value {
    let state = &app.services().state;
    let mut cfg = ClientConfig::new(url);
    cfg.timeout = Duration::from_millis(client_timeout_ms);
    let engine = WorkflowEngine::new(
        state.db.clone(),
        state.stamping.clone(),
        Some(Arc::new(OnexTreeClient::new(cfg))),
        EventFactory::new("dev"),
        vec![c],
        4,
        Duration::from_secs(30),
    );
    let input = WorkflowInput {
        content: format!("engine test {}", uuid::Uuid::new_v4()),
        file_path: None,
        content_type: None,
        namespace: "engine.test".into(),
        stamp_type: "lightweight".into(),
        enable_intelligence: true,
        intelligence_context: Some("ctx".into()),
        metadata: Default::default(),
    };
    let wf = engine.create("test_contract", input, None).await.unwrap();
    engine.run(wf.id.0).await.unwrap();
    let r = app
        .client
        .get(app.url(&format!("/api/v1/workflows/{}", wf.id.0)))
        .send()
        .await
        .unwrap();
    r.json::<Value>().await.unwrap()["data"].clone()
}

fn step<'a>(wf: &'a Value, name: &str) -> &'a Value {
    wf["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_timeouts_and_parallel_steps() {
    let app = TestApp::start(Backend::Postgres).await;

    // Parallel: the slow intelligence call (300 ms) runs while the hash step runs.
    let (url, _) = onextree(0, 300).await;
    let wf = run(&app, &url, 2000, contract(10_000, "optional = true")).await;
    assert_eq!(wf["state"], "completed", "{wf}");
    let (hash, intel) = (
        step(&wf, "hash_generation"),
        step(&wf, "onextree_intelligence"),
    );
    // Both steps carry their times (a missing one fails here, not as `None <= None`), and the
    // intervals overlap: each started before the other completed.
    let at = |s: &Value, k: &str| -> chrono::DateTime<chrono::FixedOffset> {
        let t = s[k].as_str().unwrap_or_else(|| panic!("{k} missing: {wf}"));
        chrono::DateTime::parse_from_rfc3339(t).unwrap_or_else(|e| panic!("{k} = {t}: {e}"))
    };
    assert!(
        at(intel, "started_at") < at(hash, "completed_at"),
        "steps of one wave overlap: {wf}"
    );
    assert!(
        at(hash, "started_at") < at(intel, "completed_at"),
        "steps of one wave overlap: {wf}"
    );
    assert_eq!(intel["output"]["degraded"], false);

    // A failing required step is retried, then succeeds.
    let (url, calls) = onextree(2, 0).await;
    let wf = run(
        &app,
        &url,
        2000,
        contract(
            10_000,
            "retry = { max_attempts = 3, initial_backoff_ms = 10, max_backoff_ms = 50 }",
        ),
    )
    .await;
    assert_eq!(wf["state"], "completed", "{wf}");
    assert_eq!(step(&wf, "onextree_intelligence")["attempts"], 3);
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    // Retries exhausted: the workflow fails, the step and its error are recorded.
    let (url, _) = onextree(100, 0).await;
    let wf = run(
        &app,
        &url,
        2000,
        contract(
            10_000,
            "retry = { max_attempts = 2, initial_backoff_ms = 10, max_backoff_ms = 50 }",
        ),
    )
    .await;
    assert_eq!(wf["state"], "failed", "{wf}");
    let s = step(&wf, "onextree_intelligence");
    assert_eq!(
        (s["status"].as_str(), s["attempts"].as_i64()),
        (Some("failed"), Some(2))
    );
    assert!(s["error"].as_str().unwrap().contains("500"), "{s}");
    assert!(
        wf["error"]
            .as_str()
            .unwrap()
            .contains("onextree_intelligence"),
        "{wf}"
    );
    let t: Vec<&str> = wf["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["to_state"].as_str().unwrap())
        .collect();
    assert_eq!(t, ["processing", "failed"]);
    assert!(wf["result"].is_null());

    // Step timeout: the service is slower than the step may take.
    let (url, _) = onextree(0, 1500).await;
    let wf = run(&app, &url, 5000, contract(10_000, "timeout_ms = 200")).await;
    assert_eq!(wf["state"], "failed", "{wf}");
    assert!(
        step(&wf, "onextree_intelligence")["error"]
            .as_str()
            .unwrap()
            .contains("timed out after 200 ms"),
        "{wf}"
    );

    // Workflow timeout: the whole contract may take 300 ms.
    let wf = run(&app, &url, 5000, contract(300, "timeout_ms = 5000")).await;
    assert_eq!(wf["state"], "failed", "{wf}");
    let e = step(&wf, "onextree_intelligence")["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        e.contains("timed out") || e.contains("workflow timeout"),
        "{e}"
    );
    app.stop().await;
}
