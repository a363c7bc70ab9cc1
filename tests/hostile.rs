//! Hostile input at the HTTP edge (issue 12, parts 1–2), black-box over HTTP on both backends:
//! oversize free-form JSON, ids, paths and headers are refused naming the field; bodies over their
//! route's limit are 413 at once; large bodies are admitted against the in-flight budget (503 +
//! Retry-After when it is spent) while the service stays responsive; the peak memory of a maximal
//! request is a small multiple of its body (VmHWM of a spawned server process).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{assert_error, Backend, FreshDb, TestApp};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

both_backends!(
    oversize_free_form_json_is_refused_naming_the_field,
    oversize_ids_paths_and_headers_are_refused,
    a_poisonous_workflow_id_is_refused_and_later_events_flow,
    bodies_over_the_small_json_limit_are_413,
    large_bodies_are_admitted_against_the_inflight_budget,
    concurrent_large_bodies_are_answered_while_health_stays_fast,
    peak_memory_of_maximal_requests_is_bounded,
    unterminated_multipart_is_413_with_bounded_memory,
);

const MIB: usize = 1 << 20;

/// POST `body` as JSON bytes (sent as given: a declared length, a stream, or a prepared document).
async fn post_body(
    client: &reqwest::Client,
    url: impl reqwest::IntoUrl,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("request")
}

/// `{"a0": 0, "a1": 1, …}` with `n` members.
fn wide_object(n: usize) -> Value {
    Value::Object((0..n).map(|i| (format!("a{i}"), json!(i))).collect())
}

/// `{"a": {"a": … {}}}` with `depth` objects.
fn deep_object(depth: usize) -> Value {
    let mut v = json!({});
    for _ in 1..depth {
        v = json!({ "a": v });
    }
    v
}

async fn oversize_free_form_json_is_refused_naming_the_field(backend: Backend) {
    let app = TestApp::start(backend).await;
    // Defaults: 64 KiB serialized, depth 32, 1024 members/items.
    let big = json!({ "blob": "x".repeat(70 * 1024) });
    let cases = [
        (big.clone(), 413, "PAYLOAD_TOO_LARGE"),
        (deep_object(33), 422, "VALIDATION_ERROR"),
        (wide_object(1025), 413, "PAYLOAD_TOO_LARGE"),
        (json!({ "list": vec![0; 1100] }), 413, "PAYLOAD_TOO_LARGE"),
    ];
    for (metadata, status, code) in &cases {
        let (s, b) = app
            .post_json("/stamp", &json!({"content": "m", "metadata": metadata}))
            .await;
        assert_error(s, &b, *status, code, Some("metadata"));
    }
    // Within the limits: accepted and stored whole.
    for metadata in [deep_object(32), wide_object(1000)] {
        let (s, b) = app
            .post_json(
                "/stamp",
                &json!({"content": format!("ok {}", metadata.to_string().len()), "metadata": metadata}),
            )
            .await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["data"]["created"], true, "{b}");
    }
    // Batch items are named by position.
    let mut items: Vec<Value> = (0..5)
        .map(|i| json!({"content": format!("item {i}")}))
        .collect();
    items[3]["metadata"] = wide_object(2000);
    let (s, b) = app.post_json("/batch", &json!({ "items": items })).await;
    assert_error(s, &b, 413, "PAYLOAD_TOO_LARGE", Some("items[3].metadata"));
    items[3]["metadata"] = deep_object(40);
    let (s, b) = app.post_json("/batch", &json!({ "items": items })).await;
    assert_error(s, &b, 422, "VALIDATION_ERROR", Some("items[3].metadata"));
    // Workflow metadata too.
    let (s, b) = app
        .post_path(
            "/api/v1/workflows",
            json!({"content": "w", "metadata": big}),
        )
        .await;
    assert_error(s, &b, 413, "PAYLOAD_TOO_LARGE", Some("metadata"));
    let (s, b) = app
        .post_path(
            "/workflow/submit",
            json!({"content": "w", "metadata": deep_object(50)}),
        )
        .await;
    assert_error(s, &b, 422, "VALIDATION_ERROR", Some("metadata"));
    app.stop().await;
}

async fn oversize_ids_paths_and_headers_are_refused(backend: Backend) {
    let app = TestApp::start(backend).await;
    let long_id = "i".repeat(257);
    let long_path = format!("/{}", "p".repeat(4096));
    for (body, field) in [
        (json!({"content": "a", "file_path": long_path}), "file_path"),
        (
            json!({"content": "a", "metadata": {"workflow_id": long_id}}),
            "metadata.workflow_id",
        ),
        (
            json!({"content": "a", "metadata": {"session_id": long_id}}),
            "metadata.session_id",
        ),
        (
            json!({"content": "a", "metadata": {"author": long_id}}),
            "metadata.author",
        ),
        (
            json!({"content": "a", "protocol_version": long_id}),
            "protocol_version",
        ),
    ] {
        let (s, b) = app.post_json("/stamp", &body).await;
        assert_error(s, &b, 422, "VALIDATION_ERROR", Some(field));
    }
    // At the limits: accepted.
    let (s, b) = app
        .post_json(
            "/stamp",
            &json!({"content": "at limit", "file_path": "p".repeat(4096),
                    "metadata": {"workflow_id": "w".repeat(256)}}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    // Batch: an item id is refused for the request; a path fails its item only.
    let (s, b) = app
        .post_json(
            "/batch",
            &json!({"items": [{"content": "b0"}, {"content": "b1", "id": long_id}]}),
        )
        .await;
    assert_error(s, &b, 422, "VALIDATION_ERROR", Some("items[1].id"));
    let (s, b) = app
        .post_json(
            "/batch",
            &json!({"items": [{"content": "b0"}, {"content": "b1", "file_path": long_path}]}),
        )
        .await;
    assert_eq!((s, b["status"].as_str()), (200, Some("partial")), "{b}");
    assert_eq!(b["error"][0]["field"], "items[1].file_path", "{b}");
    // Workflows: refused before they are accepted (not failed later).
    for (body, field) in [
        (json!({"content": "w", "file_path": long_path}), "file_path"),
        (json!({"content": "w", "contract": long_id}), "contract"),
        (
            json!({"content": "w", "metadata": {"workflow_id": long_id}}),
            "metadata.workflow_id",
        ),
        (
            json!({"content": "w", "intelligence_context": "c".repeat(70 * 1024)}),
            "intelligence_context",
        ),
    ] {
        let (s, b) = app.post_path("/api/v1/workflows", &body).await;
        assert_error(s, &b, 422, "VALIDATION_ERROR", Some(field));
    }
    // Namespaces keep their own limit and code.
    let (s, b) = app
        .post_json(
            "/stamp",
            &json!({"content": "a", "namespace": "n".repeat(300)}),
        )
        .await;
    assert_error(s, &b, 400, "NAMESPACE_INVALID", Some("namespace"));
    // Id headers: over 128 bytes (or not visible ASCII) is refused, naming the header.
    for (name, value, shown) in [
        ("X-Correlation-ID", "c".repeat(129), "X-Correlation-ID"),
        ("X-Request-ID", "r".repeat(1000), "X-Request-ID"),
        ("traceparent", "t".repeat(200), "traceparent"),
        (
            "X-Correlation-ID",
            "has space".to_owned(),
            "X-Correlation-ID",
        ),
    ] {
        let res = app
            .client
            .post(app.api("/stamp"))
            .header(name, value)
            .json(&json!({"content": "h"}))
            .send()
            .await
            .unwrap();
        let s = res.status().as_u16();
        let b: Value = res.json().await.unwrap();
        assert_error(s, &b, 422, "VALIDATION_ERROR", Some(shown));
    }
    let res = app
        .client
        .get(app.api("/health/live"))
        .header("X-Correlation-ID", "c".repeat(128))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-correlation-id"], "c".repeat(128).as_str());
    app.stop().await;
}

/// Poll `GET path` until `done(body)` holds (10 s deadline).
async fn poll_until(app: &TestApp, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (s, b) = app.get_path(path).await;
        if s == 200 && done(&b) {
            return b;
        }
        assert!(Instant::now() < deadline, "{path} never matched: {s} {b}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The live bug of issue 12: a 20 KB `metadata.workflow_id` was accepted (200) and then held the
/// outbox on PostgreSQL (index row too large). It is refused now, and the next stamp's event
/// reaches `event_logs`.
async fn a_poisonous_workflow_id_is_refused_and_later_events_flow(backend: Backend) {
    let app = TestApp::start(backend).await;
    let poison = "QUJD".repeat(5 * 1024);
    let (s, b) = app
        .post_json(
            "/stamp",
            &json!({"content": "poison", "namespace": "hostile.poison",
                    "metadata": {"workflow_id": poison}}),
        )
        .await;
    assert_error(s, &b, 422, "VALIDATION_ERROR", Some("metadata.workflow_id"));
    let wf = format!("wf-{}", uuid::Uuid::new_v4().simple());
    let (s, b) = app
        .post_json(
            "/stamp",
            &json!({"content": "after the poison", "namespace": "hostile.poison",
                    "metadata": {"workflow_id": wf}}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let stamp_id = b["data"]["stamp_id"].as_str().unwrap().to_owned();
    let events = poll_until(&app, &format!("/api/v1/events?session_id={wf}"), |b| {
        b["data"]["events"]
            .as_array()
            .is_some_and(|e| !e.is_empty())
    })
    .await;
    let event = &events["data"]["events"][0];
    assert_eq!(
        event["topic"], "dev.omninode_bridge.onex.evt.metadata-stamp-created.v1",
        "{events}"
    );
    assert_eq!(event["payload"]["stamp_id"], stamp_id.as_str(), "{events}");
    app.stop().await;
}

async fn bodies_over_the_small_json_limit_are_413(backend: Backend) {
    let app = TestApp::start_with(backend, |s| s.http.max_json_body_bytes = 4096).await;
    let padded = |n: usize| format!("{{\"namespace\": \"a.b\"{}}}", " ".repeat(n));
    let url = app.url("/aggregation/query");
    // Declared length over the limit.
    let res = post_body(&app.client, &url, padded(5000)).await;
    let s = res.status().as_u16();
    assert_error(
        s,
        &res.json().await.unwrap(),
        413,
        "PAYLOAD_TOO_LARGE",
        Some("body"),
    );
    // Chunked: counted as it arrives.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = padded(9000)
        .into_bytes()
        .chunks(1000)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let res = app
        .client
        .post(&url)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    let s = res.status().as_u16();
    assert_error(
        s,
        &res.json().await.unwrap(),
        413,
        "PAYLOAD_TOO_LARGE",
        Some("body"),
    );
    // Within the limit: answered.
    let res = post_body(&app.client, &url, padded(3000)).await;
    assert_eq!(res.status(), 200);
    // The DLQ routes have the small limit too; content routes keep the large one.
    let (s, b) = app
        .post_path("/api/v1/dlq/reset", json!({"topic": "t".repeat(5000)}))
        .await;
    assert_error(s, &b, 413, "PAYLOAD_TOO_LARGE", Some("body"));
    let (s, b) = app
        .post_json("/stamp", &json!({"content": "c".repeat(10_000)}))
        .await;
    assert_eq!(s, 200, "{b}");
    app.stop().await;
}

/// A `/stamp` body of exactly `len` bytes whose content is `content_len` bytes (the rest is JSON
/// whitespace).
fn stamp_body(len: usize, content_len: usize) -> Vec<u8> {
    let head = format!("{{\"content\": \"{}\"", "a".repeat(content_len));
    assert!(head.len() < len);
    let mut b = head.into_bytes();
    b.resize(len - 1, b' ');
    b.push(b'}');
    b
}

/// A streamed request body: the chunks sent through the returned sender, ending when it drops.
fn held_body() -> (tokio::sync::mpsc::Sender<Vec<u8>>, reqwest::Body) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|c| (Ok::<_, std::io::Error>(c), rx))
    });
    (tx, reqwest::Body::wrap_stream(stream))
}

async fn wait_for_budget(app: &TestApp, at_least: u64) {
    let budget = app.services().state.body_budget.clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    while budget.used() < at_least {
        assert!(
            Instant::now() < deadline,
            "budget holds {} bytes, expected {at_least}",
            budget.used()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn live_is_fast(app: &TestApp) {
    let t = Instant::now();
    let (s, _) = app.get("/health/live").await;
    assert_eq!(s, 200);
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
}

async fn large_bodies_are_admitted_against_the_inflight_budget(backend: Backend) {
    let app = TestApp::start_with(backend, |s| {
        s.stamping.max_content_bytes = 2 * MIB; // content routes: 5 MiB bodies
        s.http.max_inflight_body_bytes = 6 * MIB as u64;
    })
    .await;
    // A: declares 4 MiB and sends 1 MiB of it, then waits.
    let a_body = stamp_body(4 * MIB, MIB + 17);
    let (a_tx, body) = held_body();
    let a = tokio::spawn(
        app.client
            .post(app.api("/stamp"))
            .header("content-type", "application/json")
            .header("content-length", a_body.len())
            .body(body)
            .send(),
    );
    a_tx.send(a_body[..MIB].to_vec()).await.unwrap();
    wait_for_budget(&app, 4 * MIB as u64).await;
    // B: 3 MiB more does not fit → 503 with Retry-After, at once.
    let b_body = stamp_body(3 * MIB, MIB + 18);
    let res = post_body(&app.client, app.api("/stamp"), b_body.clone()).await;
    assert_eq!(res.headers()["retry-after"], "2");
    let s = res.status().as_u16();
    assert_error(
        s,
        &res.json().await.unwrap(),
        503,
        "SERVICE_UNAVAILABLE",
        Some("body"),
    );
    // Small requests still fit, and the service answers quickly.
    let (s, b) = app.post_json("/stamp", &json!({"content": "small"})).await;
    assert_eq!(s, 200, "{b}");
    live_is_fast(&app).await;
    // C: chunked, admitted as its bytes arrive: over the budget midway → 503 (read over a raw
    // connection while C is still sending).
    let head = "POST /api/v1/metadata-stamping/stamp HTTP/1.1\r\nHost: localhost\r\n\
                Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    let (status, _) = send_unterminated(
        &app.base,
        head,
        b"{\"content\": \"",
        &[b'a'; 64 * 1024],
        3 * MIB,
    )
    .await;
    assert_eq!(status, 503);
    // A completes; its bytes are given back, and B now fits.
    a_tx.send(a_body[MIB..].to_vec()).await.unwrap();
    drop(a_tx);
    let res = a.await.unwrap().expect("response to A");
    assert_eq!(res.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.services().state.body_budget.used() != 0 {
        assert!(Instant::now() < deadline, "budget not given back");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let res = post_body(&app.client, app.api("/stamp"), b_body).await;
    assert_eq!(res.status(), 200);
    app.stop().await;
}

async fn concurrent_large_bodies_are_answered_while_health_stays_fast(backend: Backend) {
    let app = TestApp::start_with(backend, |s| {
        s.stamping.max_content_bytes = 4 * MIB; // 9 MiB bodies
        s.http.max_inflight_body_bytes = 12 * MIB as u64;
    })
    .await;
    let mut calls = Vec::new();
    for i in 0..8 {
        let req = app
            .client
            .post(app.api("/stamp"))
            .header("content-type", "application/json")
            .body(stamp_body(6 * MIB, 4 * MIB - 1000 + i));
        calls.push(tokio::spawn(async move {
            let res = req.send().await.expect("response");
            let retry = res.headers().get("retry-after").is_some();
            (res.status().as_u16(), retry)
        }));
    }
    for _ in 0..5 {
        live_is_fast(&app).await;
    }
    let mut ok = 0;
    for c in calls {
        let (status, retry) = c.await.unwrap();
        assert!(status == 200 || (status == 503 && retry), "{status}");
        ok += usize::from(status == 200);
    }
    assert!(ok >= 1, "no request was admitted");
    live_is_fast(&app).await;
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Peak memory of a spawned server (VmHWM of /proc/<pid>/status).
// ---------------------------------------------------------------------------------------------

struct Server {
    child: Child,
    base: String,
    client: reqwest::Client,
}

impl Server {
    async fn start(db: &FreshDb, env: &[(&str, String)]) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_omninode-bridge"));
        cmd.arg("serve")
            .env("OMNINODE__DATABASE__URL", &db.url)
            .env("OMNINODE__HTTP__BIND", format!("127.0.0.1:{port}"))
            .env("OMNINODE__HTTP__WORKERS", "2")
            .env("OMNINODE__LOG__LEVEL", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let server = Server {
            child: cmd.spawn().expect("spawn service"),
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = server
                .client
                .get(format!(
                    "{}/api/v1/metadata-stamping/health/ready",
                    server.base
                ))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if ready {
                return server;
            }
            assert!(Instant::now() < deadline, "service did not become ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Peak resident set size so far (VmHWM), bytes.
    fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("proc status");
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM");
        kb * 1024
    }

    fn api(&self, path: &str) -> String {
        format!("{}/api/v1/metadata-stamping{path}", self.base)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Peak memory growth of the largest accepted `/stamp`, `/hash` and small-JSON requests, as a
/// multiple of the body (issue 12 saw 70×). Printed for docs/BENCHMARKS.md.
async fn peak_memory_of_maximal_requests_is_bounded(backend: Backend) {
    let db = FreshDb::new(backend).await;
    let content_limit = 32 * MIB;
    let server = Server::start(
        &db,
        &[
            (
                "OMNINODE__STAMPING__MAX_CONTENT_BYTES",
                content_limit.to_string(),
            ),
            ("OMNINODE__STAMPING__MAX_HASH_BYTES", (64 * MIB).to_string()),
        ],
    )
    .await;
    // Warm up every path once, so the baseline holds the runtime's own memory.
    let warm = server
        .client
        .post(server.api("/stamp"))
        .json(&json!({"content": "warm", "metadata": {"a": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(warm.status(), 200);
    let base = server.peak_rss();

    // /stamp: content at the limit (text with lines), metadata near its limits.
    let line = "The quick brown fox jumps over the lazy dog; \"quoted\" and \\ slashes.\n";
    let content: String = line.repeat(content_limit / line.len());
    let metadata = Value::Object(
        (0..1000)
            .map(|i| (format!("k{i}"), json!("v".repeat(50))))
            .collect(),
    );
    let body = serde_json::to_vec(
        &json!({"content": content, "metadata": metadata, "file_path": "big.txt"}),
    )
    .unwrap();
    drop(content);
    let res = post_body(&server.client, server.api("/stamp"), body.clone()).await;
    assert_eq!(res.status(), 200);
    let answer = res.bytes().await.unwrap();
    let stamp_peak = server.peak_rss();
    let stamp_ratio = (stamp_peak - base) as f64 / body.len() as f64;
    drop(answer);

    // /hash: a raw body at the limit is streamed, not held.
    let hash_body = vec![7u8; 64 * MIB];
    let res = server
        .client
        .post(server.api("/hash"))
        .header("content-type", "application/octet-stream")
        .body(hash_body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let hash_peak = server.peak_rss();

    // A small-JSON route at its limit (64 KiB).
    let names: Vec<String> = (0..1000)
        .map(|i| format!("ns{i}.{}", "x".repeat(50)))
        .collect();
    let small = serde_json::to_vec(&json!({"namespaces": names[..], "limit": 10})).unwrap();
    assert!(small.len() < 64 * 1024, "{}", small.len());
    let res = post_body(
        &server.client,
        format!("{}/aggregation/query", server.base),
        small,
    )
    .await;
    assert_eq!(res.status(), 200);
    let json_peak = server.peak_rss();
    eprintln!(
        "peak RSS ({backend:?}): baseline {} MiB; /stamp body {} MiB → +{} MiB ({stamp_ratio:.1}× body); \
         /hash 64 MiB raw → peak {} MiB (+{} MiB over /stamp's); /aggregation/query 64 KiB → peak {} MiB",
        base / MIB as u64,
        body.len() / MIB,
        (stamp_peak - base) / MIB as u64,
        hash_peak / MIB as u64,
        (hash_peak - stamp_peak) / MIB as u64,
        json_peak / MIB as u64,
    );
    assert!(
        stamp_ratio < 8.0,
        "/stamp peak grew {stamp_ratio:.1}× its body"
    );
    // Streaming bodies never raise the peak reached by the /stamp above.
    assert!(
        hash_peak - stamp_peak < 16 * MIB as u64,
        "/hash raised the peak"
    );
    assert!(
        json_peak - hash_peak < 4 * MIB as u64,
        "a 64 KiB body raised the peak"
    );
    drop(server);
    db.drop_db().await;
}

/// Send `head` then chunks of `chunk` (chunked encoding, never terminated) until the server
/// answers or `max` bytes went out; the status and how long it took.
async fn send_unterminated(
    base: &str,
    head: &str,
    first: &[u8],
    chunk: &[u8],
    max: usize,
) -> (u16, Duration) {
    let addr = base.trim_start_matches("http://");
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let started = Instant::now();
    let head = head.to_owned();
    let first = first.to_vec();
    let chunk = chunk.to_vec();
    let writer = tokio::spawn(async move {
        let frame = |data: &[u8]| {
            let mut f = format!("{:x}\r\n", data.len()).into_bytes();
            f.extend_from_slice(data);
            f.extend_from_slice(b"\r\n");
            f
        };
        if wr.write_all(head.as_bytes()).await.is_err()
            || wr.write_all(&frame(&first)).await.is_err()
        {
            return;
        }
        let framed = frame(&chunk);
        let mut sent = 0;
        while sent < max {
            if wr.write_all(&framed).await.is_err() {
                return;
            }
            sent += chunk.len();
        }
        // Hold the connection open (never send the last chunk) until the reader is done.
        std::future::pending::<()>().await;
    });
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    let status = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let n = rd.read(&mut buf).await.unwrap_or(0);
            assert!(n > 0, "connection closed without a response");
            response.extend_from_slice(&buf[..n]);
            if let Some(line_end) = response.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&response[..line_end]).to_string();
                return line
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse::<u16>().ok())
                    .expect("status");
            }
        }
    })
    .await
    .expect("no response within 30 s");
    writer.abort();
    (status, started.elapsed())
}

/// Multipart `/hash` counts every byte: a file part that never ends, a non-file part that never
/// ends and a header block that never ends are each 413 once past the limit, with memory flat.
async fn unterminated_multipart_is_413_with_bounded_memory(backend: Backend) {
    let db = FreshDb::new(backend).await;
    let limit = 16 * MIB;
    let server = Server::start(
        &db,
        &[("OMNINODE__STAMPING__MAX_HASH_BYTES", limit.to_string())],
    )
    .await;
    let head = "POST /api/v1/metadata-stamping/hash HTTP/1.1\r\nHost: localhost\r\n\
                Content-Type: multipart/form-data; boundary=XyZ\r\nTransfer-Encoding: chunked\r\n\r\n";
    let base = server.peak_rss();
    let data = vec![b'a'; 256 * 1024];
    let crlf_dashes: Vec<u8> = b"\r\n--X".repeat(50_000);
    for (first, chunk) in [
        (
            &b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n"[..],
            &data[..],
        ),
        (
            &b"--XyZ\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\n"[..],
            &data[..],
        ),
        (
            &b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n"[..],
            &crlf_dashes[..],
        ),
        (&b"--XyZ\r\nX-Long: "[..], &data[..]),
        (&b"preamble without any boundary "[..], &data[..]),
    ] {
        let (status, took) = send_unterminated(&server.base, head, first, chunk, 4 * limit).await;
        assert_eq!(status, 413, "{:?}", String::from_utf8_lossy(&first[..20]));
        assert!(took < Duration::from_secs(10), "took {took:?}");
    }
    let grew = server.peak_rss() - base;
    eprintln!(
        "unterminated multipart ({backend:?}): peak RSS +{} KiB",
        grew / 1024
    );
    assert!(
        grew < 16 * MIB as u64,
        "peak RSS grew {} MiB",
        grew / MIB as u64
    );
    // A well-formed upload still hashes.
    let form = reqwest::multipart::Form::new().text("note", "x").part(
        "file",
        reqwest::multipart::Part::bytes(b"Hello, World!".to_vec()).file_name("a"),
    );
    let res = server
        .client
        .post(server.api("/hash"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let b: Value = res.json().await.unwrap();
    assert_eq!(
        b["data"]["file_hash"],
        blake3::hash(b"Hello, World!").to_hex().as_str(),
        "{b}"
    );
    drop(server);
    db.drop_db().await;
}
