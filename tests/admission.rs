//! Admission control and bounded work, black-box over HTTP on both backends: a flood of workflow
//! submissions ends in 429s while every accepted workflow completes exactly once; queued workflows
//! are not taken over by another instance while they wait; the live tail refuses the client over
//! `http.max_sse_clients`; a client trickling its headers is cut off; a locked table answers
//! 503 `DATABASE_BUSY` (PostgreSQL `statement_timeout`, SQLite busy) and pool wait timeouts leave the
//! database breaker closed; the codegen pending map is bounded; listings never carry a workflow's
//! input.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{assert_error, Backend, TestApp};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

both_backends!(
    workflow_flood_ends_in_429_and_every_accepted_workflow_completes_once,
    queued_workflows_are_not_taken_over_while_they_wait,
    live_tail_clients_are_capped,
    a_locked_table_is_503_database_busy_and_the_breaker_stays_closed,
    pool_wait_timeouts_leave_the_breaker_closed,
    workflow_listing_does_not_carry_the_input,
);

/// A stand-in OnexTree service that holds every request until the gate opens (or, with `hold`, for
/// at most that long: a slow service), then answers with a valid analysis. Workflows with
/// intelligence enabled wait at their intelligence step meanwhile.
struct Gate {
    url: String,
    open: watch::Sender<bool>,
    calls: Arc<std::sync::atomic::AtomicUsize>,
}

impl Gate {
    async fn start(hold: Option<Duration>) -> Gate {
        let (open, rx) = watch::channel(false);
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let c = calls.clone();
        let server = actix_web::HttpServer::new(move || {
            let (rx, c) = (rx.clone(), c.clone());
            actix_web::App::new().default_service(actix_web::web::to(move || {
                let (mut rx, c) = (rx.clone(), c.clone());
                async move {
                    c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let opened = rx.wait_for(|open| *open);
                    match hold {
                        Some(d) => drop(tokio::time::timeout(d, opened).await),
                        None => drop(opened.await),
                    }
                    actix_web::HttpResponse::Ok().json(json!({"status": "success", "data": {
                        "data_quality": 1.0, "pattern_strength": 1.0, "coverage": 0.8,
                        "relationship_density": 0.0, "patterns": ["gate"]}}))
                }
            }))
        })
        .workers(1)
        .bind("127.0.0.1:0")
        .expect("bind gate");
        let url = format!("http://{}", server.addrs()[0]);
        tokio::spawn(server.run());
        Gate { url, open, calls }
    }

    fn calls(&self) -> usize {
        self.calls.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn open(&self) {
        let _ = self.open.send(true);
    }
}

/// A workflow request that waits at the gate (a unique intelligence context: no cache hit).
fn gated_workflow(i: usize) -> Value {
    json!({"content": format!("admission content {i} {}", uuid::Uuid::new_v4()),
           "namespace": "admission.test", "enable_intelligence": true,
           "intelligence_context": format!("ctx {}", uuid::Uuid::new_v4())})
}

async fn poll<T>(what: &str, secs: u64, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Wait until `id` is completed; return its detail.
async fn completed(app: &TestApp, id: &str) -> Value {
    poll(&format!("workflow {id} to complete"), 30, async || {
        let (_, b) = app.get_path(&format!("/api/v1/workflows/{id}")).await;
        let state = b["data"]["state"].as_str().unwrap_or_default().to_owned();
        assert_ne!(state, "failed", "{b}");
        (state == "completed").then(|| b["data"].clone())
    })
    .await
}

/// The workflow ran once: started once, every step once, one intelligence request.
async fn ran_once(app: &TestApp, id: &str, wf: &Value) {
    let transitions: Vec<(String, String)> = wf["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["from_state"].as_str().unwrap().to_owned(),
                t["to_state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        transitions,
        [
            ("pending".to_owned(), "processing".to_owned()),
            ("processing".to_owned(), "completed".to_owned())
        ],
        "{wf}"
    );
    for s in wf["steps"].as_array().unwrap() {
        assert_eq!(s["attempts"], 1, "{wf}");
    }
    // Every run emits its step events: a second run would show twice the count.
    let count = |events: &Value, slug: &str| {
        events
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| {
                e["topic"]
                    .as_str()
                    .is_some_and(|t| t.contains(&format!(".{slug}.")))
            })
            .count()
    };
    let events = poll(&format!("the events of workflow {id}"), 20, async || {
        let (_, b) = app
            .get_path(&format!("/api/v1/events?correlation_id={id}&limit=500"))
            .await;
        let ev = b["data"]["events"].clone();
        (count(&ev, "stamp-workflow-completed") == 1).then_some(ev)
    })
    .await;
    assert_eq!(count(&events, "stamp-workflow-started"), 1, "{events}");
    assert_eq!(count(&events, "workflow-step-completed"), 6, "{events}");
    assert_eq!(
        count(&events, "onextree-intelligence-requested"),
        1,
        "{events}"
    );
}

async fn workflow_flood_ends_in_429_and_every_accepted_workflow_completes_once(backend: Backend) {
    let gate = Gate::start(None).await;
    let url = gate.url.clone();
    let app = TestApp::start_with(backend, |s| {
        s.workflow.concurrency = 2;
        s.workflow.queue_capacity = 3;
        s.intelligence.onextree_url = url;
    })
    .await;
    // Fill the instance: 2 running (held at the gate) + 3 queued.
    let mut accepted = Vec::new();
    for i in 0..5 {
        let (s, b) = app.post_path("/api/v1/workflows", gated_workflow(i)).await;
        assert_eq!(s, 202, "{b}");
        accepted.push(b["data"]["workflow_id"].as_str().unwrap().to_owned());
    }
    poll("two workflows at the gate", 10, async || {
        (gate.calls() >= 2).then_some(())
    })
    .await;
    // The flood: every one refused at once, with the envelope and Retry-After, nothing stored.
    let flood = (0..20).map(|i| {
        let (client, url) = (app.client.clone(), app.url("/api/v1/workflows"));
        async move {
            let res = client
                .post(url)
                .json(&gated_workflow(100 + i))
                .send()
                .await
                .expect("request");
            let status = res.status().as_u16();
            let retry_after = res
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            (
                status,
                retry_after,
                res.json::<Value>().await.expect("json"),
            )
        }
    });
    for (status, retry_after, body) in futures_util::future::join_all(flood).await {
        assert_error(status, &body, 429, "WORKFLOW_QUEUE_FULL", None);
        assert!(retry_after.is_some_and(|v| v.parse::<u64>().is_ok()));
    }
    let (_, list) = app.get_path("/api/v1/workflows?limit=100").await;
    assert_eq!(
        list["data"]["total"], 5,
        "refused submissions stored nothing"
    );
    gate.open();
    for id in &accepted {
        let wf = completed(&app, id).await;
        ran_once(&app, id, &wf).await;
    }
    // The places are free again.
    let (s, b) = app
        .post_path("/api/v1/workflows", gated_workflow(999))
        .await;
    assert_eq!(s, 202, "{b}");
    completed(&app, b["data"]["workflow_id"].as_str().unwrap()).await;
    app.stop().await;
}

async fn queued_workflows_are_not_taken_over_while_they_wait(backend: Backend) {
    // OnexTree answers after 1.2 s: one workflow at a time on A takes that long, so the third one
    // waits in A's queue for about 2.4 s — more than twice its 1 s lease.
    let gate = Gate::start(Some(Duration::from_millis(1200))).await;
    let url = gate.url.clone();
    // A is full (1 running + 2 queued), so its own recovery claims nothing: only B could.
    let a = TestApp::start_with(backend, |s| {
        s.workflow.concurrency = 1;
        s.workflow.queue_capacity = 2;
        s.workflow.lease_secs = 1;
        s.intelligence.onextree_url = url.clone();
    })
    .await;
    // B shares the database and runs recovery every third of a second, ready to take over any
    // workflow whose lease lapsed. Had it taken over a queued workflow, both instances would run it:
    // twice the step events, two OnexTree requests.
    let mut settings = common::settings_for(&a.db.url);
    settings.workflow.lease_secs = 1;
    settings.intelligence.onextree_url = url;
    let b = TestApp::start_on(a.db.share(), settings).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let (s, body) = a.post_path("/api/v1/workflows", gated_workflow(i)).await;
        assert_eq!(s, 202, "{body}");
        ids.push(body["data"]["workflow_id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        let wf = completed(&a, id).await;
        ran_once(&a, id, &wf).await;
    }
    // The scenario happened: the last one waited longer than its lease before it started.
    let wf = completed(&a, &ids[2]).await;
    let created = chrono::DateTime::parse_from_rfc3339(wf["created_at"].as_str().unwrap()).unwrap();
    let started =
        chrono::DateTime::parse_from_rfc3339(wf["transitions"][0]["at"].as_str().unwrap()).unwrap();
    assert!(
        started - created > chrono::Duration::milliseconds(1500),
        "waited only {:?}",
        started - created
    );
    assert_eq!(gate.calls(), 3);
    b.stop().await;
    a.stop().await;
}

async fn live_tail_clients_are_capped(backend: Backend) {
    let app = TestApp::start_with(backend, |s| s.http.max_sse_clients = 3).await;
    let client = reqwest::Client::new();
    let open = async || {
        client
            .get(app.url("/api/v1/events/stream"))
            .send()
            .await
            .expect("request")
    };
    let mut streams = Vec::new();
    for _ in 0..3 {
        let res = open().await;
        assert_eq!(res.status().as_u16(), 200);
        assert!(res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        streams.push(res);
    }
    let res = open().await;
    let status = res.status().as_u16();
    assert!(res.headers().get("retry-after").is_some());
    let body: Value = res.json().await.expect("json");
    assert_error(status, &body, 503, "TOO_MANY_STREAM_CLIENTS", None);
    // The served ones still get events.
    let (s, _) = app
        .post_json(
            "/stamp",
            &json!({"content": "tail me", "namespace": "tail.cap"}),
        )
        .await;
    assert_eq!(s, 200);
    let mut first = streams.swap_remove(0);
    let chunk = tokio::time::timeout(Duration::from_secs(10), async {
        let mut seen = String::new();
        while let Some(c) = first.chunk().await.expect("chunk") {
            seen.push_str(&String::from_utf8_lossy(&c));
            if seen.contains("metadata-stamp-created") {
                break;
            }
        }
        seen
    })
    .await
    .expect("an event on a served stream");
    assert!(chunk.contains("event: trace"), "{chunk}");
    drop(streams);
    drop(first);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_trickling_its_headers_is_cut_off() {
    let app = TestApp::start_with(Backend::Sqlite, |s| {
        s.http.client_request_timeout_ms = 1500;
    })
    .await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let stream = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let (mut read, mut write) = stream.into_split();
    let started = Instant::now();
    // One byte every 200 ms: the headers would take 12 s to arrive. (The timeout is 1.5 s, not
    // less: it runs from the accept, and a loaded test machine may take a while to read a request.)
    let trickle = tokio::spawn(async move {
        let request = b"GET /api/v1/metadata-stamping/health/live HTTP/1.1\r\nHost: x\r\n\r\n";
        for b in request.iter() {
            if write.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(8), read.read_to_end(&mut answer))
        .await
        .expect("the server closes the connection well before the headers are complete")
        .ok();
    let elapsed = started.elapsed();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(elapsed < Duration::from_secs(6), "{elapsed:?}");
    trickle.abort();
    // Other clients are served as usual (on a new connection: the fixture's pooled keep-alive
    // connection may have been idle longer than this test's header timeout).
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let res = fresh
        .get(app.api("/health/live"))
        .send()
        .await
        .expect("request");
    let status = res.status();
    let body = res.text().await.unwrap_or_default();
    assert_eq!(status, 200, "{body}");
    app.stop().await;
}

/// Hold the write lock of `workflow_executions` from the test's own connection until the returned
/// sender is dropped or sent to. PostgreSQL: `LOCK TABLE … IN ACCESS EXCLUSIVE MODE` (reads wait
/// too); SQLite: `BEGIN IMMEDIATE` (writes wait, reads do not).
async fn lock_workflows(app: &TestApp) -> tokio::sync::oneshot::Sender<()> {
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let (locked_tx, locked) = tokio::sync::oneshot::channel::<()>();
    match app.db.backend {
        Backend::Postgres => {
            let mut conn = AsyncPgConnection::establish(&app.db.url)
                .await
                .expect("connect");
            tokio::spawn(async move {
                conn.batch_execute(
                    "BEGIN; LOCK TABLE workflow_executions IN ACCESS EXCLUSIVE MODE;",
                )
                .await
                .expect("lock");
                let _ = locked_tx.send(());
                let _ = released.await;
                let _ = conn.batch_execute("ROLLBACK").await;
            });
        }
        Backend::Sqlite => {
            let path = app.db.url.trim_start_matches("sqlite://").to_owned();
            std::thread::spawn(move || {
                use diesel::connection::SimpleConnection;
                use diesel::Connection;
                let mut conn = diesel::SqliteConnection::establish(&path).expect("open");
                conn.batch_execute("BEGIN IMMEDIATE").expect("lock");
                let _ = locked_tx.send(());
                let _ = released.blocking_recv();
                let _ = conn.batch_execute("ROLLBACK");
            });
        }
    }
    locked.await.expect("locked");
    release
}

/// A request that needs `workflow_executions` under the lock: PostgreSQL reads wait, SQLite writes.
async fn needs_the_locked_table(app: &TestApp, i: usize) -> (u16, Value) {
    match app.db.backend {
        Backend::Postgres => app.get_path("/api/v1/workflows").await,
        Backend::Sqlite => {
            app.post_path(
                "/api/v1/workflows",
                json!({"content": format!("locked {i}"), "namespace": "admission.lock"}),
            )
            .await
        }
    }
}

async fn breaker(app: &TestApp) -> Value {
    let (_, h) = app.get("/health").await;
    let db = &h["data"]["components"]["database"];
    let db = if db.is_null() {
        &h["components"]["database"]
    } else {
        db
    };
    db["circuit_breaker"].clone()
}

async fn a_locked_table_is_503_database_busy_and_the_breaker_stays_closed(backend: Backend) {
    let app = TestApp::start_with(backend, |s| {
        s.database.statement_timeout_ms = 300;
        s.database.breaker_failure_threshold = 1;
        s.workflow.lease_secs = 300;
    })
    .await;
    let release = lock_workflows(&app).await;
    let started = Instant::now();
    let (s, b) = needs_the_locked_table(&app, 0).await;
    assert_error(s, &b, 503, "DATABASE_BUSY", None);
    assert!(started.elapsed() < Duration::from_secs(5));
    let (s, b) = needs_the_locked_table(&app, 1).await;
    assert_error(s, &b, 503, "DATABASE_BUSY", None);
    let _ = release.send(());
    let br = breaker(&app).await;
    assert_eq!(br["state"], "closed", "{br}");
    assert_eq!(br["opened_total"], 0, "{br}");
    let (s, b) = poll("the table to be served again", 10, async || {
        let (s, b) = needs_the_locked_table(&app, 2).await;
        (s != 503).then_some((s, b))
    })
    .await;
    assert!(s == 200 || s == 202, "{s} {b}");
    app.stop().await;
}

async fn pool_wait_timeouts_leave_the_breaker_closed(backend: Backend) {
    // Two pooled connections, both held by requests waiting on the lock; every other request times
    // out waiting for the pool (100 ms). The breaker opens after one counted failure — none may count.
    let app = TestApp::start_with(backend, |s| {
        s.database.pool_size = 2;
        s.database.acquire_timeout_ms = 100;
        s.database.statement_timeout_ms = 3000;
        s.database.breaker_failure_threshold = 1;
        // Recovery (which updates workflow_executions) runs at start, then not again in this test.
        s.workflow.lease_secs = 300;
    })
    .await;
    let release = lock_workflows(&app).await;
    let app = Arc::new(app);
    let holders: Vec<_> = (0..2)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move { needs_the_locked_table(&app, i).await })
        })
        .collect();
    // Both connections are taken once a request waits for the pool.
    poll("the pool to be exhausted", 10, async || {
        let (_, h) = app.get("/health").await;
        let pool = if h["data"].is_object() {
            h["data"]["components"]["database"]["pool"].clone()
        } else {
            h["components"]["database"]["pool"].clone()
        };
        (pool["in_use"] == 2).then_some(())
    })
    .await;
    let refused = futures_util::future::join_all((10..20).map(|i| {
        let app = app.clone();
        async move { needs_the_locked_table(&app, i).await }
    }))
    .await;
    for (s, b) in &refused {
        assert_error(*s, b, 503, "DATABASE_BUSY", None);
    }
    let br = breaker(&app).await;
    assert_eq!(br["state"], "closed", "{br}");
    assert_eq!(br["opened_total"], 0, "{br}");
    let _ = release.send(());
    // A holder served once the lock is gone, or (if a background task had a connection when it
    // arrived) refused as busy like the others: never anything else.
    for h in holders {
        let (s, b) = h.await.expect("holder");
        if s == 503 {
            assert_error(s, &b, 503, "DATABASE_BUSY", None);
        } else {
            assert!(s == 200 || s == 202, "{s} {b}");
        }
    }
    let br = breaker(&app).await;
    assert_eq!(br["state"], "closed", "{br}");
    let app = Arc::into_inner(app).expect("sole owner");
    app.stop().await;
}

async fn workflow_listing_does_not_carry_the_input(backend: Backend) {
    let app = TestApp::start(backend).await;
    let big = "x".repeat(2 * 1024 * 1024);
    let (s, b) = app
        .post_path(
            "/api/v1/workflows?wait=true",
            json!({"content": big, "namespace": "admission.big", "metadata": {"k": "v"}}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let id = b["data"]["workflow_id"].as_str().unwrap().to_owned();
    for path in [
        "/api/v1/workflows",
        "/api/v1/workflows?namespace=admission.big",
    ] {
        let res = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 200);
        let text = res.text().await.unwrap();
        assert!(text.len() < 16 * 1024, "{path}: {} bytes", text.len());
        assert!(text.contains(&id), "{path}");
    }
    let res = app
        .client
        .get(app.url("/dashboard/workflows"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let text = res.text().await.unwrap();
    assert!(text.len() < 64 * 1024, "dashboard: {} bytes", text.len());
    assert!(text.contains(&id));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codegen_pending_requests_are_bounded() {
    let app = TestApp::start_with(Backend::Sqlite, |s| {
        s.codegen.max_pending = 2;
        s.codegen.response_timeout_ms = 3000;
    })
    .await;
    let app = Arc::new(app);
    // Nobody answers on the bus: two requests wait for their responses.
    let waiting: Vec<_> = (0..2)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move {
                app.post_path(
                    "/api/v1/codegen/mixin",
                    json!({"requirements": ["caching"], "node_type": "effect"}),
                )
                .await
            })
        })
        .collect();
    poll("two pending codegen requests", 10, async || {
        (app.services().state.codegen.waiting() == 2).then_some(())
    })
    .await;
    let res = app
        .client
        .post(app.url("/api/v1/codegen/mixin"))
        .json(&json!({"requirements": ["caching"], "node_type": "effect"}))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    assert!(res.headers().get("retry-after").is_some());
    let body: Value = res.json().await.unwrap();
    assert_error(status, &body, 503, "CODEGEN_BUSY", None);
    for w in waiting {
        let (s, b) = w.await.unwrap();
        assert_error(s, &b, 504, "CODEGEN_TIMEOUT", None);
    }
    let app = Arc::into_inner(app).expect("sole owner");
    app.stop().await;
}
