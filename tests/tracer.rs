//! Event tracer queries over HTTP on both backends, with literal `event_logs` fixtures: trace order
//! and 24 h range, status from the latest event, nearest-rank percentiles, bottleneck severities,
//! correlated events across sessions, unknown ids, listing filters and cursor pagination, search by
//! any id, the SSE stream, and the dashboard's escaping.

mod common;

use std::time::Duration;

use chrono::{DateTime, Utc};
use common::{assert_error, Backend, TestApp};
use futures_util::StreamExt;
use omninode_bridge::store::event_logs::{self, EventLogRow};
use omninode_bridge::store::sql_types::{DbJson, DbTs, DbUuid};
use serde_json::{json, Value};
use uuid::Uuid;

struct Ev {
    session: &'static str,
    correlation: &'static str,
    topic: &'static str,
    event_type: &'static str,
    status: &'static str,
    ms: Option<f64>,
    at: DateTime<Utc>,
    namespace: Option<&'static str>,
    payload: Value,
}

fn ev(session: &'static str, topic: &'static str, status: &'static str, at: DateTime<Utc>) -> Ev {
    Ev {
        session,
        correlation: "corr-none",
        topic,
        event_type: "event",
        status,
        ms: None,
        at,
        namespace: None,
        payload: json!({}),
    }
}

async fn seed(app: &TestApp, events: Vec<Ev>) -> Vec<Uuid> {
    let rows: Vec<EventLogRow> = events
        .into_iter()
        .map(|e| EventLogRow {
            event_id: DbUuid(Uuid::new_v4()),
            session_id: Some(e.session.to_owned()),
            correlation_id: Some(e.correlation.to_owned()),
            event_type: e.event_type.to_owned(),
            topic: e.topic.to_owned(),
            kafka_partition: None,
            kafka_offset: None,
            event_timestamp: DbTs(e.at),
            status: e.status.to_owned(),
            processing_time_ms: e.ms,
            namespace: e.namespace.map(str::to_owned),
            payload: DbJson(e.payload),
            metadata: DbJson(json!({})),
            recorded_at: DbTs(Utc::now()),
        })
        .collect();
    let ids = rows.iter().map(|r| r.event_id.0).collect();
    let n = event_logs::insert_batch(&app.services().state.db, &rows)
        .await
        .expect("seed event_logs");
    assert_eq!(n, rows.len());
    ids
}

/// `hours` before (plus `secs` after) one instant fixed for the whole test binary, so fixtures and
/// expected durations are exact.
fn ago(hours: i64, secs: i64) -> DateTime<Utc> {
    static BASE: std::sync::OnceLock<DateTime<Utc>> = std::sync::OnceLock::new();
    *BASE.get_or_init(Utc::now) - chrono::Duration::hours(hours) + chrono::Duration::seconds(secs)
}

fn data(status: u16, body: &Value) -> &Value {
    assert_eq!(status, 200, "{body}");
    &body["data"]
}

fn topics_of(trace: &Value) -> Vec<String> {
    trace["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["topic"].as_str().unwrap().to_owned())
        .collect()
}

async fn trace_is_ordered_within_24h_with_latest_status(backend: Backend) {
    let app = TestApp::start(backend).await;
    // Inserted out of order; one event is older than the default 24 h range.
    seed(
        &app,
        vec![
            ev("s-order", "t.third", "completed", ago(1, 0)),
            ev("s-order", "t.too-old", "failed", ago(25, 0)),
            ev("s-order", "t.first", "processing", ago(23, 0)),
            ev("s-order", "t.second", "processing", ago(2, 0)),
            ev("s-failed", "t.a", "success", ago(3, 0)),
            ev("s-failed", "t.b", "failed", ago(2, 0)),
        ],
    )
    .await;
    let (s, b) = app.get_path("/api/v1/traces/sessions/s-order").await;
    let t = data(s, &b);
    assert_eq!(topics_of(t), ["t.first", "t.second", "t.third"]);
    assert_eq!(t["event_count"], 3);
    assert_eq!(
        t["status"], "completed",
        "status comes from the latest event"
    );
    assert_eq!(t["duration_ms"], 22.0 * 3600.0 * 1000.0);
    assert_eq!(t["kind"], "session");
    assert_eq!(t["truncated"], false);

    let (s, b) = app
        .get_path("/api/v1/traces/sessions/s-order?hours=48")
        .await;
    assert_eq!(
        topics_of(data(s, &b)),
        ["t.too-old", "t.first", "t.second", "t.third"]
    );
    // An explicit range.
    let since = ago(3, 0).to_rfc3339();
    let until = ago(1, -30).to_rfc3339();
    let url = format!(
        "/api/v1/traces/sessions/s-order?since={}&until={}",
        urlencode(&since),
        urlencode(&until)
    );
    let (s, b) = app.get_path(&url).await;
    assert_eq!(topics_of(data(s, &b)), ["t.second"]);

    let (s, b) = app.get_path("/api/v1/traces/sessions/s-failed").await;
    assert_eq!(data(s, &b)["status"], "failed");

    // Bad ranges name the parameter.
    let (s, b) = app
        .get_path("/api/v1/traces/sessions/s-order?hours=0")
        .await;
    assert_error(s, &b, 422, "VALIDATION_ERROR", Some("hours"));
    let (s, b) = app
        .get_path("/api/v1/traces/sessions/s-order?since=yesterday")
        .await;
    assert_error(s, &b, 422, "VALIDATION_ERROR", Some("since"));
    app.stop().await;
}

async fn percentiles_and_breakdowns(backend: Backend) {
    let app = TestApp::start(backend).await;
    let events = (1..=100)
        .map(|i| Ev {
            ms: Some(i as f64),
            event_type: if i % 4 == 0 { "response" } else { "request" },
            topic: if i <= 50 { "t.low" } else { "t.high" },
            status: if i % 10 == 0 { "failed" } else { "success" },
            ..ev("s-pct", "", "", ago(1, i))
        })
        .collect();
    seed(&app, events).await;
    let (s, b) = app.get_path("/api/v1/traces/sessions/s-pct/metrics").await;
    let m = data(s, &b);
    let p = &m["processing_time"];
    assert_eq!(
        (&p["p50_ms"], &p["p95_ms"], &p["p99_ms"]),
        (&json!(50.0), &json!(95.0), &json!(99.0))
    );
    assert_eq!(
        (&p["min_ms"], &p["max_ms"], &p["avg_ms"]),
        (&json!(1.0), &json!(100.0), &json!(50.5))
    );
    assert_eq!(m["total_events"], 100);
    assert_eq!(m["failed"], 10);
    assert_eq!(m["success_rate"], 0.9);
    assert_eq!(
        m["by_event_type"],
        json!([
            {"key": "request", "count": 75, "successful": 70, "failed": 5, "avg_processing_ms": 50.0},
            {"key": "response", "count": 25, "successful": 20, "failed": 5, "avg_processing_ms": 52.0},
        ])
    );
    assert_eq!(
        m["by_topic"],
        json!([
            {"key": "t.high", "count": 50, "successful": 45, "failed": 5, "avg_processing_ms": 75.5},
            {"key": "t.low", "count": 50, "successful": 45, "failed": 5, "avg_processing_ms": 25.5},
        ])
    );
    assert_eq!(m["bottlenecks"], json!([]));
    app.stop().await;
}

async fn bottleneck_severities(backend: Backend) {
    let app = TestApp::start(backend).await;
    let mut events = Vec::new();
    for (i, (topic, ms)) in [
        ("t.high", 6000.0),
        ("t.medium", 3000.0),
        ("t.low", 1500.0),
        ("t.fine", 900.0),
        // Two events averaging 6000 as well.
        ("t.high", 6000.0),
    ]
    .into_iter()
    .enumerate()
    {
        events.push(Ev {
            ms: Some(ms),
            topic,
            ..ev("s-bn", "", "success", ago(1, i as i64))
        });
    }
    seed(&app, events).await;
    let (s, b) = app.get_path("/api/v1/traces/sessions/s-bn/metrics").await;
    assert_eq!(
        data(s, &b)["bottlenecks"],
        json!([
            {"topic": "t.high", "avg_processing_ms": 6000.0, "count": 2, "severity": "high"},
            {"topic": "t.medium", "avg_processing_ms": 3000.0, "count": 1, "severity": "medium"},
            {"topic": "t.low", "avg_processing_ms": 1500.0, "count": 1, "severity": "low"},
        ])
    );
    app.stop().await;
}

async fn correlated_events_span_sessions(backend: Backend) {
    let app = TestApp::start(backend).await;
    seed(
        &app,
        vec![
            Ev {
                correlation: "corr-x",
                ..ev("s-one", "t.a", "success", ago(1, 0))
            },
            Ev {
                correlation: "corr-x",
                ..ev("s-two", "t.b", "success", ago(1, 1))
            },
            Ev {
                correlation: "corr-x",
                ..ev("s-one", "t.c", "completed", ago(1, 2))
            },
            Ev {
                correlation: "corr-y",
                ..ev("s-one", "t.other", "success", ago(1, 3))
            },
        ],
    )
    .await;
    let (s, b) = app.get_path("/api/v1/traces/correlation/corr-x").await;
    let t = data(s, &b);
    assert_eq!(topics_of(t), ["t.a", "t.b", "t.c"]);
    assert_eq!(t["sessions"], json!(["s-one", "s-two"]));
    assert_eq!(t["kind"], "correlation");
    let (s, b) = app.get_path("/api/v1/traces/sessions/s-one").await;
    assert_eq!(topics_of(data(s, &b)), ["t.a", "t.c", "t.other"]);
    app.stop().await;
}

async fn unknown_ids_are_empty_not_errors(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (s, b) = app
        .get_path("/api/v1/traces/sessions/no-such-session")
        .await;
    let t = data(s, &b);
    assert_eq!(
        (&t["event_count"], &t["events"], &t["status"]),
        (&json!(0), &json!([]), &Value::Null)
    );
    let (s, b) = app
        .get_path("/api/v1/traces/sessions/no-such-session/metrics")
        .await;
    let m = data(s, &b);
    assert_eq!(
        (&m["total_events"], &m["success_rate"]),
        (&json!(0), &json!(0.0))
    );
    let (s, b) = app.get_path("/api/v1/traces/correlation/nope").await;
    assert_eq!(data(s, &b)["events"], json!([]));
    let (s, b) = app
        .get_path(&format!("/api/v1/search?q={}", Uuid::new_v4()))
        .await;
    assert_eq!(data(s, &b)["hits"], json!([]));
    let (s, b) = app
        .get_path(&format!("/api/v1/search?q={}", "ab".repeat(32)))
        .await;
    assert_eq!(data(s, &b)["hits"], json!([]));
    // A single resource that does not exist is a 404; a malformed id a 400; no query a 422.
    let (s, b) = app
        .get_path(&format!("/api/v1/events/{}", Uuid::new_v4()))
        .await;
    assert_error(s, &b, 404, "EVENT_NOT_FOUND", Some("event_id"));
    let (s, b) = app.get_path("/api/v1/events/not-a-uuid").await;
    assert_error(s, &b, 400, "INVALID_EVENT_ID", Some("event_id"));
    let (s, b) = app.get_path("/api/v1/search?q=%20").await;
    assert_error(s, &b, 422, "VALIDATION_ERROR", Some("q"));
    app.stop().await;
}

async fn listing_filters_and_cursor_pagination(backend: Backend) {
    let app = TestApp::start(backend).await;
    let mut events = Vec::new();
    for i in 0..7 {
        events.push(Ev {
            namespace: Some(if i % 2 == 0 { "list.even" } else { "list.odd" }),
            event_type: if i == 3 { "error" } else { "event" },
            ..ev(
                "s-list",
                "t.list",
                if i == 5 { "failed" } else { "success" },
                ago(1, i),
            )
        });
    }
    // Two events at the same instant: the cursor must still not skip or repeat one.
    let same = ago(1, 30);
    events.push(Ev {
        namespace: Some("list.even"),
        ..ev("s-list", "t.list", "success", same)
    });
    events.push(Ev {
        namespace: Some("list.even"),
        ..ev("s-list", "t.list", "success", same)
    });
    let ids = seed(&app, events).await;

    let mut seen = Vec::new();
    let mut url = "/api/v1/events?session_id=s-list&limit=2".to_owned();
    let mut pages = 0;
    loop {
        let (s, b) = app.get_path(&url).await;
        let d = data(s, &b);
        let evs = d["events"].as_array().unwrap();
        assert!(evs.len() <= 2);
        for e in evs {
            seen.push((
                e["timestamp"].as_str().unwrap().to_owned(),
                e["event_id"].as_str().unwrap().to_owned(),
            ));
        }
        pages += 1;
        match d["next_cursor"].as_str() {
            Some(c) => url = format!("/api/v1/events?session_id=s-list&limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(pages, 5);
    assert_eq!(seen.len(), 9, "every event exactly once");
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted, "newest first, ties by event id");
    let mut all: Vec<String> = seen.into_iter().map(|(_, id)| id).collect();
    all.sort();
    let mut want: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    want.sort();
    assert_eq!(all, want);

    let count = |b: &Value| b["data"]["events"].as_array().unwrap().len();
    let (_, b) = app
        .get_path("/api/v1/events?session_id=s-list&namespace=list.odd")
        .await;
    assert_eq!(count(&b), 3);
    let (_, b) = app
        .get_path("/api/v1/events?session_id=s-list&status=failed")
        .await;
    assert_eq!(count(&b), 1);
    let (_, b) = app
        .get_path("/api/v1/events?session_id=s-list&event_type=error")
        .await;
    assert_eq!(count(&b), 1);
    let (_, b) = app
        .get_path("/api/v1/events?topic=t.list&namespace=list.even")
        .await;
    assert_eq!(count(&b), 6);
    let since = urlencode(&ago(1, 4).to_rfc3339());
    let (_, b) = app
        .get_path(&format!("/api/v1/events?session_id=s-list&since={since}"))
        .await;
    assert_eq!(count(&b), 5);

    let (s, b) = app.get_path("/api/v1/events?cursor=garbage").await;
    assert_error(s, &b, 422, "VALIDATION_ERROR", Some("cursor"));
    let (s, b) = app.get_path("/api/v1/events?limit=0").await;
    assert_error(s, &b, 422, "VALIDATION_ERROR", Some("limit"));
    let (s, b) = app.get_path("/api/v1/events?until=2020-13-01").await;
    assert_error(s, &b, 422, "VALIDATION_ERROR", Some("until"));
    app.stop().await;
}

async fn search_finds_every_kind_of_id(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (s, stamp) = app
        .post_json(
            "/stamp",
            &json!({"content": "search me", "namespace": "search.ns"}),
        )
        .await;
    assert_eq!(s, 200, "{stamp}");
    let hash = stamp["data"]["file_hash"].as_str().unwrap().to_owned();
    let stamp_id = stamp["data"]["stamp_id"].as_str().unwrap().to_owned();
    let (s, wf) = app
        .post_path(
            "/api/v1/workflows?wait=true",
            json!({"content": "workflow content", "namespace": "search.ns"}),
        )
        .await;
    assert_eq!(s, 200, "{wf}");
    let wf_id = wf["data"]["workflow_id"].as_str().unwrap().to_owned();
    let ids = seed(
        &app,
        vec![Ev {
            correlation: "corr-search",
            ..ev("sess-search", "t.s", "success", ago(1, 0))
        }],
    )
    .await;

    let kinds = |b: &Value| -> Vec<(String, String)> {
        b["data"]["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h["kind"].as_str().unwrap().to_owned(),
                    h["page"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let (_, b) = app.get_path(&format!("/api/v1/search?q={hash}")).await;
    assert_eq!(
        kinds(&b),
        [("stamp".to_owned(), format!("/dashboard/stamps?hash={hash}"))]
    );
    let (_, b) = app
        .get_path(&format!("/api/v1/search?q=blake3:{}", hash.to_uppercase()))
        .await;
    assert_eq!(kinds(&b)[0].0, "stamp");
    let (_, b) = app.get_path(&format!("/api/v1/search?q={stamp_id}")).await;
    assert_eq!(kinds(&b)[0].0, "stamp");
    // A workflow id is also its events' session and correlation id: the workflow comes first.
    let (_, b) = app.get_path(&format!("/api/v1/search?q={wf_id}")).await;
    let k = kinds(&b);
    assert_eq!(
        k[0],
        (
            "workflow".to_owned(),
            format!("/dashboard/workflows/{wf_id}")
        )
    );
    assert!(k.iter().any(|(kind, _)| kind == "session"), "{k:?}");
    let (_, b) = app.get_path(&format!("/api/v1/search?q={}", ids[0])).await;
    assert_eq!(kinds(&b)[0].0, "event");
    let (_, b) = app.get_path("/api/v1/search?q=sess-search").await;
    assert_eq!(
        kinds(&b),
        [(
            "session".to_owned(),
            "/dashboard/traces/session/sess-search".to_owned()
        )]
    );
    let (_, b) = app.get_path("/api/v1/search?q=corr-search").await;
    assert_eq!(kinds(&b)[0].0, "correlation");

    // The dashboard's search lands on the page of the first hit.
    let res = no_redirect_client()
        .get(app.url(&format!("/dashboard/search?q={wf_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 303);
    assert_eq!(
        res.headers()["location"].to_str().unwrap(),
        format!("/dashboard/workflows/{wf_id}")
    );
    app.stop().await;
}

async fn sse_stream_delivers_filtered_live_events(backend: Backend) {
    let app = TestApp::start(backend).await;
    let res = app
        .client
        .get(app.url("/api/v1/events/stream?namespace=sse.wanted"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut body = res.bytes_stream();
    // One event the filter drops, then one it keeps.
    for ns in ["sse.other", "sse.wanted"] {
        let (s, b) = app
            .post_json(
                "/stamp",
                &json!({"content": format!("sse {ns}"), "namespace": ns}),
            )
            .await;
        assert_eq!(s, 200, "{b}");
    }
    let mut text = String::new();
    let got = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(chunk) = body.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            if text.contains("metadata-stamp-created") {
                return;
            }
        }
    })
    .await;
    assert!(got.is_ok(), "no event within 10 s; got {text:?}");
    assert!(text.contains("event: trace"), "{text}");
    assert!(text.contains("\"namespace\":\"sse.wanted\""), "{text}");
    assert!(!text.contains("sse.other"), "filtered out: {text}");
    drop(body);
    app.stop().await;
}

async fn dashboard_pages_escape_event_content(backend: Backend) {
    let app = TestApp::start(backend).await;
    let evil = "<script>window.__pwned=1</script><img src=x onerror=alert(1)>";
    let ids = seed(
        &app,
        vec![Ev {
            payload: json!({"note": evil}),
            namespace: Some("evil<b>ns"),
            ..ev("sess<script>", "t.evil", "success", ago(1, 0))
        }],
    )
    .await;
    for path in [
        "/dashboard/traces/session/sess%3Cscript%3E".to_owned(),
        format!("/dashboard/events/{}", ids[0]),
        "/dashboard/events".to_owned(),
    ] {
        let res = app.client.get(app.url(&path)).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 200, "{path}");
        let csp = res.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(csp.contains("script-src 'self'"), "{csp}");
        let html = res.text().await.unwrap();
        assert!(!html.contains("<script>window"), "{path} leaks markup");
        assert!(!html.contains("<img src=x"), "{path} leaks markup");
        assert!(!html.contains("evil<b>"), "{path} leaks markup");
        assert!(
            html.contains("&lt;script&gt;") || html.contains("&#60;script&#62;"),
            "{path}"
        );
    }
    // Errors render as pages with the API's status.
    let res = app
        .client
        .get(app.url(&format!("/dashboard/workflows/{}", Uuid::new_v4())))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 404);
    assert!(res.text().await.unwrap().contains("WORKFLOW_NOT_FOUND"));
    let res = app
        .client
        .get(app.url("/dashboard/stamps?hash=xyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);

    // Validate pasted content: a stamped text is valid, the same text edited is not.
    let (_, stamped) = app
        .post_json(
            "/stamp",
            &json!({"content": "validate me", "namespace": "dash.ns"}),
        )
        .await;
    let content = stamped["data"]["stamped_content"]
        .as_str()
        .unwrap()
        .to_owned();
    for (text, want) in [
        (content.clone(), "<p class=\"status ok\">valid</p>"),
        (content.replace("validate me", "tampered"), "not valid"),
    ] {
        let res = app
            .client
            .post(app.url("/dashboard/stamps/validate"))
            .form(&[("content", text.as_str()), ("namespace", "dash.ns")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200);
        let html = res.text().await.unwrap();
        assert!(html.contains(want), "{want}: {html}");
    }
    // A bad namespace is reported on the page.
    let res = app
        .client
        .post(app.url("/dashboard/stamps/validate"))
        .form(&[("content", "x"), ("namespace", "Bad Namespace!")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert!(res.text().await.unwrap().contains("notice bad"));

    // DLQ redrive without a selection says so instead of failing.
    let res = app
        .client
        .post(app.url("/dashboard/dlq/redrive"))
        .form(&[("dry_run", "on")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("Choose messages or a topic"));
    app.stop().await;
}

async fn hostile_input_is_a_422_not_a_500(backend: Backend) {
    let app = TestApp::start(backend).await;
    // PostgreSQL text cannot hold NUL: refused up front, naming the field.
    for (path, field) in [
        ("/api/v1/events?topic=%00", "topic"),
        ("/api/v1/events?session_id=a%00b", "session_id"),
        ("/api/v1/traces/sessions/a%00b", "session_id"),
        ("/api/v1/traces/correlation/%00", "correlation_id"),
        ("/api/v1/traces/sessions/a%00b/metrics", "session_id"),
        ("/api/v1/search?q=a%00b", "q"),
        ("/api/v1/events/stream?namespace=%00", "namespace"),
        ("/api/v1/events?since=10000-01-01T00:00:00Z", "since"),
    ] {
        let (s, b) = app.get_path(path).await;
        assert_error(s, &b, 422, "VALIDATION_ERROR", Some(field));
    }
    // A cursor far outside any stored time.
    use base64::Engine as _;
    for raw in [
        format!("-62135596800000001_{}", Uuid::nil()),
        format!("253402300800000000_{}", Uuid::nil()),
    ] {
        let c = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        let (s, b) = app.get_path(&format!("/api/v1/events?cursor={c}")).await;
        assert_error(s, &b, 422, "VALIDATION_ERROR", Some("cursor"));
    }
    let long = "x".repeat(513);
    let (s, b) = app
        .get_path(&format!("/api/v1/traces/sessions/{long}"))
        .await;
    assert_error(s, &b, 422, "VALIDATION_ERROR", Some("session_id"));
    app.stop().await;
}

async fn large_and_skewed_traces(backend: Backend) {
    let app = TestApp::start(backend).await;
    // More events than one trace returns: the latest status still comes from the latest event.
    let mut events: Vec<Ev> = (0..10_001)
        .map(|i| Ev {
            ms: Some(1.0),
            ..ev(
                "s-big",
                "t.big",
                "processing",
                ago(2, 0) + chrono::Duration::milliseconds(i),
            )
        })
        .collect();
    events.push(ev("s-big", "t.big", "failed", ago(1, 0)));
    // An event stamped in the future (producer clock skew) still counts without an explicit `until`.
    events.push(ev("s-skew", "t.a", "processing", ago(1, 0)));
    events.push(ev("s-skew", "t.b", "completed", ago(-1, 600)));
    seed(&app, events).await;
    let (s, b) = app.get_path("/api/v1/traces/sessions/s-big").await;
    let t = data(s, &b);
    assert_eq!(t["truncated"], true);
    assert_eq!(t["event_count"], 10_000);
    assert_eq!(
        t["status"], "failed",
        "from the latest event, beyond the returned ones"
    );
    assert_eq!(t["duration_ms"], 3_600_000.0);
    let (s, b) = app.get_path("/api/v1/traces/sessions/s-skew").await;
    let t = data(s, &b);
    assert_eq!(
        (&t["event_count"], &t["status"], &t["until"]),
        (&json!(2), &json!("completed"), &Value::Null)
    );
    app.stop().await;
}

async fn dashboard_forms_refuse_other_sites(backend: Backend) {
    let app = TestApp::start(backend).await;
    let post = |headers: Vec<(&'static str, String)>| {
        let mut r = app
            .client
            .post(app.url("/dashboard/dlq/redrive"))
            .form(&[("topic", "dev.x.dlq"), ("dry_run", "on")]);
        for (k, v) in headers {
            r = r.header(k, v);
        }
        async move { r.send().await.unwrap() }
    };
    let host = app.base.trim_start_matches("http://").to_owned();
    for (headers, want) in [
        (vec![("sec-fetch-site", "cross-site".to_owned())], 403),
        (vec![("sec-fetch-site", "same-site".to_owned())], 403),
        (vec![("origin", "http://evil.example".to_owned())], 403),
        (vec![("origin", "null".to_owned())], 403),
        (vec![("sec-fetch-site", "same-origin".to_owned())], 200),
        (vec![("origin", format!("http://{host}"))], 200),
        (vec![], 200),
    ] {
        let res = post(headers.clone()).await;
        assert_eq!(res.status().as_u16(), want, "{headers:?}");
        if want == 403 {
            assert!(res.text().await.unwrap().contains("CROSS_SITE_REQUEST"));
        }
    }
    // Too much pasted content: a 413 page, not a bare error.
    let big = "x".repeat(40 << 20);
    let res = app
        .client
        .post(app.url("/dashboard/stamps/validate"))
        .form(&[("content", big.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 413);
    assert!(res.text().await.unwrap().contains("PAYLOAD_TOO_LARGE"));

    // An id that is only a session and a correlation id lists both traces instead of picking one.
    seed(
        &app,
        vec![Ev {
            correlation: "both-id",
            ..ev("both-id", "t.x", "success", ago(1, 0))
        }],
    )
    .await;
    let res = no_redirect_client()
        .get(app.url("/dashboard/search?q=both-id"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains("/dashboard/traces/session/both-id"), "{html}");
    assert!(
        html.contains("/dashboard/traces/correlation/both-id"),
        "{html}"
    );
    app.stop().await;
}

async fn dashboard_bad_input_gets_error_pages(backend: Backend) {
    let app = TestApp::start(backend).await;
    for (path, status, code) in [
        ("/dashboard/events?cursor=garbage", 422, "VALIDATION_ERROR"),
        ("/dashboard/events?limit=9999", 422, "VALIDATION_ERROR"),
        ("/dashboard/events/not-a-uuid", 400, "INVALID_EVENT_ID"),
        (
            "/dashboard/workflows/not-a-uuid",
            400,
            "INVALID_WORKFLOW_ID",
        ),
        ("/dashboard/workflows?state=bogus", 422, "VALIDATION_ERROR"),
        (
            "/dashboard/traces/session/x?hours=0",
            422,
            "VALIDATION_ERROR",
        ),
        (
            "/dashboard/traces/correlation/a%00b",
            422,
            "VALIDATION_ERROR",
        ),
        ("/dashboard/search?q=a%00b", 422, "VALIDATION_ERROR"),
        ("/dashboard/assets/nope.js", 404, "NOT_FOUND"),
    ] {
        let res = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status().as_u16(), status, "{path}");
        assert!(res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        assert!(res.text().await.unwrap().contains(code), "{path}");
    }
    // A malformed redrive selection is refused before anything is sent.
    let res = app
        .client
        .post(app.url("/dashboard/dlq/redrive"))
        .form(&[("id", "not-a-uuid")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 422);
    assert!(res.text().await.unwrap().contains("VALIDATION_ERROR"));
    app.stop().await;
}

fn no_redirect_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn urlencode(s: &str) -> String {
    omninode_bridge::web::links::encode(s)
}

both_backends!(
    trace_is_ordered_within_24h_with_latest_status,
    percentiles_and_breakdowns,
    bottleneck_severities,
    correlated_events_span_sessions,
    unknown_ids_are_empty_not_errors,
    listing_filters_and_cursor_pagination,
    search_finds_every_kind_of_id,
    sse_stream_delivers_filtered_live_events,
    dashboard_pages_escape_event_content,
    hostile_input_is_a_422_not_a_500,
    large_and_skewed_traces,
    dashboard_forms_refuse_other_sites,
    dashboard_bad_input_gets_error_pages,
);
