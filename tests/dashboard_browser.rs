//! The dashboard in a real headless Chromium (driven over WebDriver by chromedriver), against a
//! running service: overview renders, the live tail receives an event produced during the test,
//! search by workflow id and by file hash lands on the right page, the trace page shows the events,
//! and a `<script>` payload does not execute. Screenshots go to `target/dashboard-screenshots/`.
//!
//! scripts/test.sh installs Chromium and chromedriver when missing and sets OMNINODE_TEST_CHROME and
//! OMNINODE_TEST_CHROMEDRIVER.

mod common;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Backend, TestApp};
use fantoccini::{Client, ClientBuilder, Locator};
use omninode_bridge::store::event_logs::{self, EventLogRow};
use omninode_bridge::store::sql_types::{DbJson, DbTs, DbUuid};
use serde_json::json;

struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

async fn start_driver() -> Driver {
    let bin = std::env::var("OMNINODE_TEST_CHROMEDRIVER").expect(
        "OMNINODE_TEST_CHROMEDRIVER must point at chromedriver (scripts/test.sh installs it and sets it)",
    );
    let port = free_port();
    let child = Command::new(&bin)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = reqwest::get(format!("{url}/status")).await {
            if r.status().is_success() {
                break;
            }
        }
        assert!(Instant::now() < deadline, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Driver { child, url }
}

async fn browser(driver: &Driver) -> Client {
    let chrome = std::env::var("OMNINODE_TEST_CHROME").expect(
        "OMNINODE_TEST_CHROME must point at Chromium (scripts/test.sh installs it and sets it)",
    );
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chrome,
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-dev-shm-usage", "--window-size=1400,1000"],
        }
    });
    let serde_json::Value::Object(caps) = caps else {
        unreachable!()
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("WebDriver session")
}

fn screenshot_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/dashboard-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    std::fs::write(screenshot_dir().join(format!("{name}.png")), png).expect("write screenshot");
}

/// Poll `check` (a script returning a boolean) until it is true.
async fn wait_js(c: &Client, script: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = c.execute(script, vec![]).await.expect("script");
        if v == json!(true) {
            return;
        }
        if Instant::now() > deadline {
            shot(c, &format!("timeout-{}", what.replace(' ', "-"))).await;
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The text of the element `loc` finds.
async fn text_of(c: &Client, loc: Locator<'_>) -> String {
    c.find(loc)
        .await
        .expect("element")
        .text()
        .await
        .expect("text")
}

/// How many elements `css` matches.
async fn count(c: &Client, css: &str) -> usize {
    c.find_all(Locator::Css(css)).await.expect("elements").len()
}

async fn search_for(c: &Client, app: &TestApp, q: &str) {
    c.goto(&app.url("/dashboard")).await.unwrap();
    let input = c.find(Locator::Id("search-q")).await.unwrap();
    input.send_keys(q).await.unwrap();
    c.find(Locator::Id("search-go"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_headless_chromium() {
    let app = TestApp::start(Backend::Sqlite).await;
    let driver = start_driver().await;
    let c = browser(&driver).await;

    // Content to look at: a workflow (with its stamp and events) and an event whose payload is markup.
    let (s, wf) = app
        .post_path(
            "/api/v1/workflows?wait=true",
            json!({"content": "browser test content", "namespace": "browser.ns"}),
        )
        .await;
    assert_eq!(s, 200, "{wf}");
    let wf_id = wf["data"]["workflow_id"].as_str().unwrap().to_owned();
    let file_hash = wf["data"]["result"]["stamp"]["file_hash"]
        .as_str()
        .unwrap()
        .to_owned();
    let evil = "<script>window.__pwned = 1;</script><img src=x onerror=\"window.__pwned = 2\">";
    let row = EventLogRow {
        event_id: DbUuid(uuid::Uuid::new_v4()),
        session_id: Some("xss-session".into()),
        correlation_id: Some("xss-correlation".into()),
        event_type: "event".into(),
        topic: "dev.omninode_bridge.onex.evt.metadata-stamp-created.v1".into(),
        kafka_partition: None,
        kafka_offset: None,
        event_timestamp: DbTs(chrono::Utc::now()),
        status: "success".into(),
        processing_time_ms: Some(1.5),
        namespace: Some("browser.ns".into()),
        payload: DbJson(json!({"note": evil})),
        metadata: DbJson(json!({})),
        recorded_at: DbTs(chrono::Utc::now()),
    };
    event_logs::insert_batch(&app.services().state.db, &[row])
        .await
        .unwrap();

    // 1. Overview (stamps per namespace come from the reducer's aggregates: wait until it counted).
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.get_path("/api/v1/aggregations/browser.ns").await.0 != 200 {
        assert!(
            Instant::now() < deadline,
            "reducer did not aggregate browser.ns"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.goto(&app.url("/dashboard")).await.unwrap();
    for id in [
        "health",
        "rates",
        "workflow-states",
        "dlq-summary",
        "stamps-per-namespace",
    ] {
        c.find(Locator::Id(id))
            .await
            .unwrap_or_else(|_| panic!("overview section #{id}"));
    }
    let health = text_of(&c, Locator::Id("health")).await;
    assert!(
        health.contains("Database") && health.contains("Event bus"),
        "{health}"
    );
    let ns = text_of(&c, Locator::Id("stamps-per-namespace")).await;
    assert!(ns.contains("browser.ns"), "{ns}");
    shot(&c, "overview").await;
    // htmx (vendored, under the page's CSP) replaces the overview with a fresh fragment every 5 s.
    c.execute(
        "window.__first = document.getElementById('overview'); return true;",
        vec![],
    )
    .await
    .unwrap();
    wait_js(
        &c,
        "const o = document.getElementById('overview'); return !!o && o !== window.__first;",
        "overview refresh by htmx",
    )
    .await;

    // 2. Live tail: connect, then produce an event and watch it arrive.
    c.goto(&app.url("/dashboard/events?namespace=browser.live"))
        .await
        .unwrap();
    wait_js(
        &c,
        "return document.getElementById('tail').dataset.live === '1';",
        "live tail connected",
    )
    .await;
    let (s, b) = app
        .post_json(
            "/stamp",
            &json!({"content": "live tail event", "namespace": "browser.live"}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    wait_js(
        &c,
        "return Array.from(document.querySelectorAll('#tail-rows tr.fresh')).some(r => r.textContent.includes('metadata-stamp-created') && r.textContent.includes('browser.live'));",
        "live event row",
    )
    .await;
    shot(&c, "live-tail").await;

    // 3. Search by workflow id lands on the workflow.
    search_for(&c, &app, &wf_id).await;
    wait_js(
        &c,
        "return !!document.getElementById('workflow-state');",
        "workflow page",
    )
    .await;
    let url = c.current_url().await.unwrap();
    assert_eq!(url.path(), format!("/dashboard/workflows/{wf_id}"));
    assert_eq!(
        text_of(&c, Locator::Id("workflow-state")).await,
        "completed"
    );
    assert_eq!(count(&c, "#steps tr.step").await, 6);
    assert!(count(&c, "#transitions tr.transition").await >= 2);
    let stamp = text_of(&c, Locator::Id("workflow-stamp")).await;
    assert!(stamp.contains(&file_hash), "{stamp}");
    shot(&c, "workflow").await;

    // 4. Search by file hash lands on the stamp.
    search_for(&c, &app, &file_hash).await;
    wait_js(
        &c,
        "return !!document.querySelector('div.stamp');",
        "stamp page",
    )
    .await;
    let url = c.current_url().await.unwrap();
    assert_eq!(url.path(), "/dashboard/stamps");
    assert_eq!(url.query(), Some(format!("hash={file_hash}").as_str()));
    let text = text_of(&c, Locator::Css("div.stamp")).await;
    assert!(text.contains("browser.ns"), "{text}");
    shot(&c, "stamp").await;

    // 5. The workflow's trace shows its events in order.
    c.goto(&app.url(&format!("/dashboard/traces/session/{wf_id}")))
        .await
        .unwrap();
    let rows = c
        .find_all(Locator::Css("#timeline tr.trace-event"))
        .await
        .unwrap();
    assert!(rows.len() >= 10, "{} events", rows.len());
    let first = rows[0].text().await.unwrap();
    assert!(first.contains("stamp-workflow-started"), "{first}");
    let shown = text_of(&c, Locator::Id("trace-count")).await;
    assert_eq!(shown, rows.len().to_string());
    shot(&c, "trace").await;

    // 6. A `<script>` payload renders as text and does not run.
    c.goto(&app.url("/dashboard/traces/session/xss-session"))
        .await
        .unwrap();
    c.find(Locator::Css("#timeline details summary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let payload = text_of(&c, Locator::Css("pre.payload")).await;
    assert!(
        payload.contains("<script>window.__pwned = 1;</script>"),
        "{payload}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pwned = c
        .execute("return typeof window.__pwned;", vec![])
        .await
        .unwrap();
    assert_eq!(pwned, json!("undefined"), "payload script ran");
    let injected = c
        .find_all(Locator::Css("main script, main img"))
        .await
        .unwrap();
    assert!(injected.is_empty(), "payload became elements");
    shot(&c, "escaped-payload").await;

    c.close().await.unwrap();
    drop(driver);
    app.stop().await;
}
