//! The stamping API over HTTP, on both backends: every endpoint, every error code, bad input.

mod common;

use common::{assert_envelope, assert_error, Backend, TestApp};
use serde_json::{json, Value};

const HELLO_HASH: &str = "288a86a79f20a3d6dccdca7713beaed178798296bdfa7913fa2a62d9727bf8f8";
const TS: &str = "2025-01-01T12:00:00.000000+00:00";

both_backends!(
    stamp_lookup_list_and_validate,
    stamping_is_idempotent_per_namespace_and_isolated,
    concurrent_identical_stamps_create_one_row,
    stamp_rejects_bad_input,
    hash_endpoint_raw_and_multipart,
    batch_stamps_items_and_reports_partial_failure,
    batch_limits,
    validate_reports_and_checks_expected_hash,
    lookup_errors,
    namespace_listing_paginates,
    protocol_compliance,
    health_metrics_and_docs,
    correlation_ids_are_echoed,
    events_are_published_for_stamps_validations_and_batches,
);

async fn stamp_lookup_list_and_validate(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (status, body) = app
        .post_json(
            "/stamp",
            &json!({
                "content": "Hello, World!",
                "file_path": "docs/hello.md",
                "namespace": "tests.roundtrip",
                "options": {"stamp_type": "lightweight"},
                "metadata": {"uid": "uid-1", "timestamp": TS, "author": "ada"},
            }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_envelope(&body);
    assert_eq!(body["status"], "success");
    let data = &body["data"];
    assert_eq!(data["success"], true);
    assert_eq!(data["file_hash"], HELLO_HASH);
    assert_eq!(data["stamp_type"], "lightweight");
    assert_eq!(data["namespace"], "tests.roundtrip");
    assert_eq!(data["created"], true);
    let expected_stamp = format!("# ONEX:uid=uid-1,hash={HELLO_HASH},ts={TS},author=ada");
    assert_eq!(data["stamp"], expected_stamp.as_str());
    assert_eq!(
        data["stamped_content"],
        format!("{expected_stamp}\nHello, World!").as_str()
    );
    for key in [
        "stamp_id",
        "created_at",
        "op_id",
        "version",
        "metadata_version",
        "performance_metrics",
    ] {
        assert!(!data[key].is_null(), "{key} missing: {data}");
    }
    let stamp_id = data["stamp_id"].clone();

    // Look it up with and without the namespace.
    let (status, got) = app
        .get(&format!("/stamp/{HELLO_HASH}?namespace=tests.roundtrip"))
        .await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["data"]["id"], stamp_id);
    assert_eq!(got["data"]["file_path"], "docs/hello.md");
    assert_eq!(got["data"]["file_size"], 13);
    assert_eq!(got["data"]["stamp_data"]["file_type"], "document");
    assert_eq!(got["data"]["stamp_data"]["metadata"]["author"], "ada");
    let (status, got) = app.get(&format!("/stamp/{HELLO_HASH}")).await;
    assert_eq!(status, 200);
    assert_eq!(got["data"]["id"], stamp_id);

    // List the namespace.
    let (status, list) = app.get("/namespace/tests.roundtrip").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["data"]["total_stamps"], 1);
    assert_eq!(list["data"]["stamps"][0]["id"], stamp_id);

    // The stamped content validates; a tampered copy does not.
    let stamped = data["stamped_content"].as_str().unwrap().to_owned();
    let (status, v) = app
        .post_json("/validate", &json!({"content": stamped}))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"]["is_valid"], true);
    assert_eq!(v["data"]["stamps_found"], 1);
    assert_eq!(v["data"]["current_hash"], HELLO_HASH);
    assert_eq!(
        v["data"]["validation_details"][0]["stamp_type"],
        "lightweight"
    );
    let (_, v) = app
        .post_json(
            "/validate",
            &json!({"content": stamped.replace("World", "Wörld")}),
        )
        .await;
    assert_eq!(v["data"]["is_valid"], false);
    assert_eq!(v["data"]["validation_details"][0]["is_valid"], false);

    // Rich stamp of the same content in another namespace.
    let (status, rich) = app
        .post_json(
            "/stamp",
            &json!({"content": "Hello, World!", "namespace": "tests.other", "options": {"stamp_type": "rich"},
                    "metadata": {"uid": "u2", "timestamp": TS, "content_type": "text/plain"}}),
        )
        .await;
    assert_eq!(status, 200, "{rich}");
    let stamp = rich["data"]["stamp"].as_str().unwrap();
    assert!(
        stamp.starts_with("<!-- ONEX_METADATA_START -->\n<!-- ONEX Metadata Stamp\n  uid: u2\n"),
        "{stamp}"
    );
    assert!(
        stamp.contains("  file_path: None\n  file_size: 13\n  content_type: text/plain\n"),
        "{stamp}"
    );
    app.stop().await;
}

async fn stamping_is_idempotent_per_namespace_and_isolated(backend: Backend) {
    let app = TestApp::start(backend).await;
    let req = json!({"content": "same content", "namespace": "tenant.a"});
    let (_, first) = app.post_json("/stamp", &req).await;
    // Re-stamping edge whitespace or an already-stamped copy is the same content.
    let (_, second) = app
        .post_json(
            "/stamp",
            &json!({"content": "\n\nsame content  \n", "namespace": "tenant.a"}),
        )
        .await;
    assert_eq!(first["data"]["created"], true);
    assert_eq!(second["data"]["created"], false);
    assert_eq!(first["data"]["stamp_id"], second["data"]["stamp_id"]);
    assert_eq!(first["data"]["created_at"], second["data"]["created_at"]);
    assert_eq!(first["data"]["file_hash"], second["data"]["file_hash"]);
    let restamp = json!({"content": first["data"]["stamped_content"], "namespace": "tenant.a"});
    let (_, third) = app.post_json("/stamp", &restamp).await;
    assert_eq!(third["data"]["stamp_id"], first["data"]["stamp_id"]);
    // Re-stamping keeps the old stamp and adds a new one.
    let stamped = third["data"]["stamped_content"].as_str().unwrap();
    assert_eq!(stamped.matches("# ONEX:").count(), 2);

    // Another namespace gets its own row and cannot see tenant.a's.
    let (_, other) = app
        .post_json(
            "/stamp",
            &json!({"content": "only in a", "namespace": "tenant.a"}),
        )
        .await;
    let hash = other["data"]["file_hash"].as_str().unwrap().to_owned();
    let (status, body) = app.get(&format!("/stamp/{hash}?namespace=tenant.b")).await;
    assert_error(
        status,
        &body,
        404,
        "STAMP_NOT_FOUND_IN_NAMESPACE",
        Some("file_hash"),
    );
    let (_, b) = app
        .post_json(
            "/stamp",
            &json!({"content": "same content", "namespace": "tenant.b"}),
        )
        .await;
    assert_eq!(b["data"]["created"], true);
    assert_ne!(b["data"]["stamp_id"], first["data"]["stamp_id"]);
    let (_, list_b) = app.get("/namespace/tenant.b").await;
    assert_eq!(list_b["data"]["total_stamps"], 1);
    let (_, list_a) = app.get("/namespace/tenant.a").await;
    assert_eq!(list_a["data"]["total_stamps"], 2);
    app.stop().await;
}

async fn concurrent_identical_stamps_create_one_row(backend: Backend) {
    let app = TestApp::start(backend).await;
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let client = app.client.clone();
        let url = app.api("/stamp");
        tasks.push(tokio::spawn(async move {
            let res = client
                .post(url)
                .json(&json!({"content": "raced content", "namespace": "race"}))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            res.json::<Value>().await.unwrap()
        }));
    }
    let mut ids = std::collections::HashSet::new();
    let mut created = 0;
    for t in tasks {
        let body = t.await.unwrap();
        ids.insert(body["data"]["stamp_id"].as_str().unwrap().to_owned());
        if body["data"]["created"] == true {
            created += 1;
        }
    }
    assert_eq!(ids.len(), 1, "one stamp id for identical content");
    assert_eq!(created, 1, "exactly one request created the row");
    let (_, list) = app.get("/namespace/race").await;
    assert_eq!(list["data"]["total_stamps"], 1);
    app.stop().await;
}

async fn stamp_rejects_bad_input(backend: Backend) {
    let app = TestApp::start_with(backend, |s| s.stamping.max_content_bytes = 1024).await;
    let raw = |body: &'static str| app.post_raw("/stamp", "application/json", body);

    let (s, b) = raw("{\"content\": ").await;
    assert_error(s, &b, 422, "VALIDATION_ERROR", None);
    assert!(
        b["error"][0]["message"]
            .as_str()
            .unwrap()
            .contains("malformed JSON"),
        "{b}"
    );
    let (s, b) = raw("").await;
    assert_error(s, &b, 422, "VALIDATION_ERROR", Some("body"));
    let (s, b) = raw("[1,2]").await;
    assert_error(s, &b, 422, "VALIDATION_ERROR", None);
    let (s, b) = raw("{\"content\": 5}").await;
    assert_error(s, &b, 422, "VALIDATION_ERROR", Some("content"));
    let (s, b) = raw("{}").await;
    assert_error(s, &b, 422, "VALIDATION_ERROR", Some("content"));
    let (s, b) = raw("{\"content\": \"x\", \"options\": {\"stamp_type\": \"fancy\"}}").await;
    assert_error(s, &b, 422, "VALIDATION_ERROR", Some("options.stamp_type"));
    let (s, b) = raw("{\"content\": \"x\", \"metadata\": {\"uid\": \"has space\"}}").await;
    assert_error(s, &b, 422, "VALIDATION_ERROR", Some("metadata.uid"));
    let (s, b) = raw("{\"content\": \"x\", \"metadata\": {\"timestamp\": \"yesterday\"}}").await;
    assert_error(s, &b, 422, "VALIDATION_ERROR", Some("metadata.timestamp"));
    let (s, b) = raw("{\"content\": \"x\", \"metadata\": {\"author\": [1]}}").await;
    assert_error(s, &b, 422, "VALIDATION_ERROR", Some("metadata.author"));

    for ns in [
        "Upper.Case",
        "a..b",
        "x'; DROP TABLE metadata_stamps; --",
        "",
    ] {
        let (s, b) = app
            .post_json("/stamp", &json!({"content": "x", "namespace": ns}))
            .await;
        assert_error(s, &b, 400, "NAMESPACE_INVALID", Some("namespace"));
    }
    let long_ns = "a".repeat(256);
    let (s, b) = app
        .post_json("/stamp", &json!({"content": "x", "namespace": long_ns}))
        .await;
    assert_error(s, &b, 400, "NAMESPACE_INVALID", Some("namespace"));

    // Over the content limit: 413 naming the field; over the body limit: 413 for the body.
    let (s, b) = app
        .post_json("/stamp", &json!({"content": "x".repeat(1025)}))
        .await;
    assert_error(s, &b, 413, "PAYLOAD_TOO_LARGE", Some("content"));
    let (s, b) = app
        .post_json("/stamp", &json!({"content": "x".repeat(4 << 20)}))
        .await;
    assert_error(s, &b, 413, "PAYLOAD_TOO_LARGE", Some("body"));

    // Binary in JSON: escaped control characters are content; invalid UTF-8 is a 422.
    let (s, b) = app
        .post_json("/stamp", &json!({"content": "nul\u{0}byte\u{1b}[31m"}))
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = app
        .post_raw(
            "/stamp",
            "application/json",
            b"{\"content\": \"\xff\xfe\"}".to_vec(),
        )
        .await;
    assert_error(s, &b, 422, "VALIDATION_ERROR", None);

    // Unknown routes and methods keep the envelope.
    let (s, b) = app.get("/nope").await;
    assert_error(s, &b, 404, "NOT_FOUND", None);
    let (s, b) = app.get("/stamp").await;
    assert_error(s, &b, 405, "METHOD_NOT_ALLOWED", None);
    let res = app
        .client
        .get(app.api("/validate-protocol"))
        .send()
        .await
        .unwrap();
    let s = res.status().as_u16();
    assert_error(
        s,
        &res.json().await.unwrap(),
        405,
        "METHOD_NOT_ALLOWED",
        None,
    );
    let res = app
        .client
        .delete(app.api(&format!("/stamp/{HELLO_HASH}")))
        .send()
        .await
        .unwrap();
    let s = res.status().as_u16();
    assert_error(
        s,
        &res.json().await.unwrap(),
        405,
        "METHOD_NOT_ALLOWED",
        None,
    );

    // NUL cannot be stored (PostgreSQL text/jsonb): refused with the field named, nothing written.
    let (s, b) = app
        .post_json("/stamp", &json!({"content": "ok", "file_path": "a\u{0}b"}))
        .await;
    assert_error(s, &b, 422, "VALIDATION_ERROR", Some("file_path"));
    let (s, b) = app
        .post_json(
            "/stamp",
            &json!({"content": "ok", "metadata": {"tags": ["x", "y\u{0}"]}}),
        )
        .await;
    assert_error(s, &b, 422, "VALIDATION_ERROR", Some("metadata.tags[1]"));
    let (s, b) = app
        .post_json(
            "/batch",
            &json!({"items": [{"content": "fine"}, {"content": "ok", "file_path": "\u{0}"}]}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["status"], "partial");
    assert_eq!(
        b["data"]["results"][1]["error"]["field"],
        "items[1].file_path"
    );

    // Nothing was lost and the service is still healthy.
    let (s, _) = app.get("/health/ready").await;
    assert_eq!(s, 200);
    let (_, list) = app.get("/namespace/omninode.services.metadata").await;
    assert_eq!(
        list["data"]["total_stamps"], 2,
        "the NUL-content stamp and the batch's good item"
    );
    app.stop().await;
}

async fn hash_endpoint_raw_and_multipart(backend: Backend) {
    let app = TestApp::start_with(backend, |s| s.stamping.max_hash_bytes = 1 << 20).await;
    let (s, b) = app
        .post_raw("/hash", "application/octet-stream", "Hello, World!")
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["file_hash"], HELLO_HASH);
    assert_eq!(b["data"]["file_size_bytes"], 13);
    assert!(["A", "B", "C"].contains(&b["data"]["performance_grade"].as_str().unwrap()));
    assert!(b["data"]["execution_time_ms"].as_f64().is_some());
    let (s, b) = app
        .post_raw("/hash", "application/octet-stream", Vec::<u8>::new())
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        b["data"]["file_hash"],
        "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
    );

    // Raw bytes are hashed exactly as received (no canonicalisation), binary included.
    let bytes: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
    let (s, b) = app
        .post_raw("/hash", "application/octet-stream", bytes.clone())
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        b["data"]["file_hash"],
        blake3::hash(&bytes).to_hex().as_str()
    );

    let form = reqwest::multipart::Form::new()
        .text("note", "ignored")
        .part(
            "file",
            reqwest::multipart::Part::bytes(bytes.clone()).file_name("blob.bin"),
        );
    let res = app
        .client
        .post(app.api("/hash"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let b: Value = res.json().await.unwrap();
    assert_eq!(
        b["data"]["file_hash"],
        blake3::hash(&bytes).to_hex().as_str()
    );
    assert_eq!(b["data"]["file_size_bytes"], 300_000);

    let form = reqwest::multipart::Form::new().text("other", "x");
    let res = app
        .client
        .post(app.api("/hash"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let s = res.status().as_u16();
    let b: Value = res.json().await.unwrap();
    assert_error(s, &b, 400, "MISSING_FILE", Some("file"));

    let big = vec![7u8; (1 << 20) + 1];
    let (s, b) = app
        .post_raw("/hash", "application/octet-stream", big.clone())
        .await;
    assert_error(s, &b, 413, "PAYLOAD_TOO_LARGE", Some("file"));
    // Without a Content-Length (chunked), the limit is enforced while streaming.
    let stream = futures_util::stream::iter(
        big.chunks(64 * 1024)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let res = app
        .client
        .post(app.api("/hash"))
        .header("content-type", "application/octet-stream")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    let s = res.status().as_u16();
    let b: Value = res.json().await.unwrap();
    assert_error(s, &b, 413, "PAYLOAD_TOO_LARGE", Some("file"));
    app.stop().await;
}

async fn batch_stamps_items_and_reports_partial_failure(backend: Backend) {
    let app = TestApp::start(backend).await;
    let items: Vec<Value> = (0..25)
        .map(|i| json!({"content": format!("batch item {i}"), "file_path": format!("f{i}.txt")}))
        .collect();
    let (s, b) = app
        .post_json(
            "/batch",
            &json!({"items": items, "namespace": "batch.ns", "options": {"stamp_type": "rich"}}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["status"], "success");
    assert_eq!(b["data"]["total_items"], 25);
    assert_eq!(b["data"]["successful_items"], 25);
    assert_eq!(b["data"]["results"][3]["id"], "item_3");
    assert!(b["data"]["results"][3]["stamp"]
        .as_str()
        .unwrap()
        .contains("ONEX_METADATA_START"));
    let (_, list) = app.get("/namespace/batch.ns?limit=1000").await;
    assert_eq!(list["data"]["total_stamps"], 25);

    // Mixed: a bad namespace, an oversized metadata uid, a replay, a duplicate within the batch.
    let (s, b) = app
        .post_json(
            "/batch",
            &json!({"namespace": "batch.ns", "items": [
                {"id": "good", "content": "fresh content"},
                {"id": "bad-ns", "content": "x", "namespace": "BAD NS"},
                {"id": "bad-uid", "content": "y", "metadata": {"uid": "no spaces allowed"}},
                {"id": "replay", "content": "batch item 0"},
                {"id": "dup", "content": "fresh content"},
            ]}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["status"], "partial");
    assert_eq!(b["data"]["successful_items"], 3);
    assert_eq!(b["data"]["failed_items"], 2);
    let results = b["data"]["results"].as_array().unwrap();
    let by_id = |id: &str| results.iter().find(|r| r["id"] == id).unwrap().clone();
    assert_eq!(by_id("good")["created"], true);
    assert_eq!(by_id("dup")["created"], false);
    assert_eq!(by_id("dup")["stamp_id"], by_id("good")["stamp_id"]);
    assert_eq!(by_id("replay")["created"], false);
    assert_eq!(by_id("bad-ns")["error"]["code"], "NAMESPACE_INVALID");
    assert_eq!(by_id("bad-ns")["error"]["field"], "items[1].namespace");
    assert_eq!(by_id("bad-uid")["error"]["field"], "items[2].metadata.uid");
    assert_eq!(b["error"].as_array().unwrap().len(), 2);
    let (_, list) = app.get("/namespace/batch.ns?limit=1000").await;
    assert_eq!(list["data"]["total_stamps"], 26);

    // All items failing is an error envelope.
    let (s, b) = app
        .post_json(
            "/batch",
            &json!({"items": [{"content": "x", "namespace": "NO"}]}),
        )
        .await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(b["status"], "error");
    app.stop().await;
}

async fn batch_limits(backend: Backend) {
    let app = TestApp::start_with(backend, |s| s.stamping.max_batch_items = 10).await;
    let (s, b) = app.post_json("/batch", &json!({"items": []})).await;
    assert_error(s, &b, 400, "EMPTY_BATCH_REQUEST", Some("items"));
    let items: Vec<Value> = (0..11)
        .map(|i| json!({"content": format!("{i}")}))
        .collect();
    let (s, b) = app.post_json("/batch", &json!({"items": items})).await;
    assert_error(s, &b, 413, "BATCH_TOO_LARGE", Some("items"));
    let (s, b) = app
        .post_json("/batch", &json!({"items": [{"content": 1}]}))
        .await;
    assert_error(s, &b, 422, "VALIDATION_ERROR", Some("items[0].content"));
    let (s, b) = app
        .post_json(
            "/batch",
            &json!({"items": [{"content": "x"}], "namespace": "B"}),
        )
        .await;
    assert_error(s, &b, 400, "NAMESPACE_INVALID", Some("namespace"));
    app.stop().await;
}

async fn validate_reports_and_checks_expected_hash(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (s, b) = app
        .post_json("/validate", &json!({"content": "no stamp here"}))
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["is_valid"], false);
    assert_eq!(b["data"]["stamps_found"], 0);
    let stamped = format!("# ONEX:uid=a,hash={HELLO_HASH},ts={TS}\nHello, World!");
    let (_, b) = app
        .post_json(
            "/validate",
            &json!({"content": stamped, "options": {"expected_hash": HELLO_HASH}}),
        )
        .await;
    assert_eq!(b["data"]["is_valid"], true);
    let other = "0".repeat(64);
    let (_, b) = app
        .post_json(
            "/validate",
            &json!({"content": stamped, "options": {"expected_hash": other}}),
        )
        .await;
    assert_eq!(b["data"]["is_valid"], false);
    let (s, b) = app
        .post_json(
            "/validate",
            &json!({"content": stamped, "options": {"expected_hash": "XYZ"}}),
        )
        .await;
    assert_error(
        s,
        &b,
        400,
        "INVALID_HASH_FORMAT",
        Some("options.expected_hash"),
    );
    let (s, b) = app
        .post_json("/validate", &json!({"content": "x", "namespace": "No"}))
        .await;
    assert_error(s, &b, 400, "NAMESPACE_INVALID", Some("namespace"));
    let (s, b) = app.post_json("/validate", &json!({"contents": "x"})).await;
    assert_error(s, &b, 422, "VALIDATION_ERROR", Some("content"));
    app.stop().await;
}

async fn lookup_errors(backend: Backend) {
    let app = TestApp::start(backend).await;
    for bad in [
        "abc",
        &HELLO_HASH.to_uppercase(),
        &format!("{HELLO_HASH}0"),
        "'%20OR%201=1%20--",
        "x'%3B%20DROP%20TABLE%20metadata_stamps%3B--",
    ] {
        let (s, b) = app.get(&format!("/stamp/{bad}")).await;
        assert_error(s, &b, 400, "INVALID_HASH_FORMAT", Some("file_hash"));
    }
    let (s, b) = app.get(&format!("/stamp/{HELLO_HASH}")).await;
    assert_error(s, &b, 404, "STAMP_NOT_FOUND", Some("file_hash"));
    let (s, b) = app
        .get(&format!("/stamp/{HELLO_HASH}?namespace=some.ns"))
        .await;
    assert_error(
        s,
        &b,
        404,
        "STAMP_NOT_FOUND_IN_NAMESPACE",
        Some("file_hash"),
    );
    let (s, b) = app
        .get(&format!("/stamp/{HELLO_HASH}?namespace=Bad%20NS"))
        .await;
    assert_error(s, &b, 400, "NAMESPACE_INVALID", Some("namespace"));
    // Without a namespace, the earliest stamp of the hash wins.
    let (_, first) = app
        .post_json(
            "/stamp",
            &json!({"content": "Hello, World!", "namespace": "z.first"}),
        )
        .await;
    let (_, _second) = app
        .post_json(
            "/stamp",
            &json!({"content": "Hello, World!", "namespace": "a.second"}),
        )
        .await;
    let (s, b) = app.get(&format!("/stamp/{HELLO_HASH}")).await;
    assert_eq!(s, 200);
    assert_eq!(b["data"]["id"], first["data"]["stamp_id"]);
    app.stop().await;
}

async fn namespace_listing_paginates(backend: Backend) {
    let app = TestApp::start(backend).await;
    for i in 0..7 {
        let (s, _) = app
            .post_json(
                "/stamp",
                &json!({"content": format!("doc {i}"), "namespace": "pages"}),
            )
            .await;
        assert_eq!(s, 200);
    }
    let (s, b) = app.get("/namespace/pages?limit=3&offset=0").await;
    assert_eq!(s, 200, "{b}");
    let d = &b["data"];
    assert_eq!(d["namespace"], "pages");
    assert_eq!(d["total_stamps"], 7);
    assert_eq!(d["stamps"].as_array().unwrap().len(), 3);
    assert_eq!(
        d["pagination"],
        json!({"limit": 3, "offset": 0, "total": 7, "has_more": true})
    );
    // Newest first.
    let first_created = d["stamps"][0]["created_at"].as_str().unwrap().to_owned();
    let last_created = d["stamps"][2]["created_at"].as_str().unwrap().to_owned();
    assert!(first_created >= last_created);
    let (_, b) = app.get("/namespace/pages?limit=3&offset=6").await;
    assert_eq!(b["data"]["stamps"].as_array().unwrap().len(), 1);
    assert_eq!(b["data"]["pagination"]["has_more"], false);
    let (_, b) = app.get("/namespace/empty.ns").await;
    assert_eq!(b["data"]["total_stamps"], 0);
    for (q, field) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=x", "limit"),
        ("offset=-1", "offset"),
    ] {
        let (s, b) = app.get(&format!("/namespace/pages?{q}")).await;
        assert_error(s, &b, 422, "VALIDATION_ERROR", Some(field));
    }
    let (s, b) = app.get("/namespace/Bad.NS").await;
    assert_error(s, &b, 400, "NAMESPACE_INVALID", Some("namespace"));
    app.stop().await;
}

async fn protocol_compliance(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (_, stamped) = app
        .post_json(
            "/stamp",
            &json!({"content": "policy doc", "options": {"stamp_type": "rich"}}),
        )
        .await;
    let (s, b) = app
        .post_json(
            "/validate-protocol",
            &json!({"content": stamped["data"]["stamped_content"]}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["compliance_level"], "full");
    assert_eq!(b["data"]["is_compliant"], true);
    let (_, b) = app
        .post_json("/validate-protocol", &json!({"content": "nothing"}))
        .await;
    assert_eq!(b["data"]["compliance_level"], "none");
    assert_eq!(b["data"]["issues"][0]["code"], "NO_STAMPS");
    assert!(!b["data"]["recommendations"].as_array().unwrap().is_empty());
    let (s, b) = app
        .post_json("/validate-protocol", &json!({"text": "nothing"}))
        .await;
    assert_error(s, &b, 422, "VALIDATION_ERROR", Some("content"));
    app.stop().await;
}

async fn health_metrics_and_docs(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.post_json("/stamp", &json!({"content": "for metrics"}))
        .await;
    let (s, h) = app.get("/health").await;
    assert_eq!(s, 200, "{h}");
    assert_eq!(h["data"]["status"], "healthy");
    let components = &h["data"]["components"];
    assert_eq!(components["database"]["status"], "healthy");
    let want_backend = if backend == Backend::Sqlite {
        "sqlite"
    } else {
        "postgresql"
    };
    assert_eq!(components["database"]["backend"], want_backend);
    for c in ["stamping_engine", "event_bus", "intelligence_client"] {
        assert!(components[c]["status"].is_string(), "{c}: {h}");
    }
    assert!(h["data"]["uptime_seconds"].as_f64().is_some());
    let (s, _) = app.get("/health/live").await;
    assert_eq!(s, 200);
    let (s, r) = app.get("/health/ready").await;
    assert_eq!(s, 200, "{r}");
    let (s, m) = app.get("/metrics").await;
    assert_eq!(s, 200, "{m}");
    assert_eq!(m["data"]["counts"]["stamps_created"], 1);
    assert!(m["data"]["hash_timing"]["p99_ms"].as_f64().is_some());
    assert!(m["data"]["database"]["pool"]["max_size"].as_u64().unwrap() > 0);

    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("db_pool_in_use"), "{text}");
    let (s, root) = {
        let r = app.client.get(app.url("/")).send().await.unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    assert_eq!(s, 200);
    assert_eq!(root["data"]["service"], "omninode-bridge");
    let plain = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(plain.status(), 200);
    let (_, doc) = app.get_path("/openapi.json").await;
    assert!(
        doc["paths"]["/api/v1/metadata-stamping/stamp"]["post"].is_object(),
        "{doc}"
    );
    let page = app.client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page
        .text()
        .await
        .unwrap()
        .to_lowercase()
        .contains("swagger"));
    app.stop().await;
}

async fn correlation_ids_are_echoed(backend: Backend) {
    let app = TestApp::start(backend).await;
    let cid = "3f2b8c1e-0000-4000-8000-000000000001";
    let res = app
        .client
        .post(app.api("/validate"))
        .header("X-Correlation-ID", cid)
        .header("X-Request-ID", "req-42")
        .json(&json!({"content": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-correlation-id"], cid);
    assert_eq!(res.headers()["x-request-id"], "req-42");
    let b: Value = res.json().await.unwrap();
    assert_eq!(b["metadata"]["correlation_id"], cid);
    // Errors carry it too; a missing one is generated.
    let res = app
        .client
        .get(app.api("/stamp/bad"))
        .header("X-Correlation-ID", cid)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-correlation-id"], cid);
    let b: Value = res.json().await.unwrap();
    assert_eq!(b["metadata"]["correlation_id"], cid);
    let res = app
        .client
        .get(app.api("/health/live"))
        .send()
        .await
        .unwrap();
    let generated = res.headers()["x-correlation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(uuid::Uuid::parse_str(&generated).is_ok());
    app.stop().await;
}

async fn events_are_published_for_stamps_validations_and_batches(backend: Backend) {
    let app = TestApp::start(backend).await;
    let mut rx = app.services().state.bus.subscribe();
    let cid = uuid::Uuid::new_v4().to_string();
    let res = app
        .client
        .post(app.api("/stamp"))
        .header("X-Correlation-ID", &cid)
        .json(&json!({"content": "event content", "namespace": "events.ns"}))
        .send()
        .await
        .unwrap();
    let stamp: Value = res.json().await.unwrap();
    // A replay creates no event.
    app.post_json(
        "/stamp",
        &json!({"content": "event content", "namespace": "events.ns"}),
    )
    .await;
    app.post_json(
        "/validate",
        &json!({"content": stamp["data"]["stamped_content"]}),
    )
    .await;
    app.post_json(
        "/batch",
        &json!({"items": [{"content": "b1"}, {"content": "b2"}], "namespace": "events.b"}),
    )
    .await;

    // Stamping events (the reducer's own events share the bus and are filtered out). The relay
    // publishes in outbox order, so a marker stamped after every request above comes last: once
    // it is on the bus, a created event for the replay would already have been seen.
    let (s, marker) = app
        .post_json(
            "/stamp",
            &json!({"content": "marker", "namespace": "events.marker"}),
        )
        .await;
    assert_eq!(s, 200, "{marker}");
    let marker_id = marker["data"]["stamp_id"].clone();
    let mut seen: Vec<(String, Value)> = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let ev = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("the marker's event did not arrive in 15 s; seen {seen:?}"))
            .expect("bus open");
        if ev.topic.contains(".metadata-") {
            let env = serde_json::to_value(&ev.envelope).unwrap();
            if env["payload"]["stamp_id"] == marker_id {
                break;
            }
            seen.push((ev.topic.clone(), env));
        }
    }
    let topics: Vec<&str> = seen.iter().map(|(t, _)| t.as_str()).collect();
    let created = "dev.omninode_bridge.onex.evt.metadata-stamp-created.v1";
    assert_eq!(topics.len(), 5, "{topics:?}");
    assert_eq!(
        topics.iter().filter(|t| **t == created).count(),
        3,
        "{topics:?}"
    );
    assert!(topics.contains(&"dev.omninode_bridge.onex.evt.metadata-stamp-validated.v1"));
    assert!(topics.contains(&"dev.omninode_bridge.onex.evt.metadata-batch-processed.v1"));
    let (_, first) = seen.iter().find(|(t, _)| t == created).unwrap();
    assert_eq!(first["correlation_id"], cid.as_str());
    assert_eq!(first["envelope_version"], "1.0");
    assert_eq!(first["source_service"], "omninode-bridge");
    assert_eq!(first["event_type"], "metadata-stamp-created");
    assert_eq!(first["partition_key"], "events.ns");
    assert_eq!(first["payload"]["stamp_id"], stamp["data"]["stamp_id"]);
    // Embedded profile: the relay records every published event in event_logs, once.
    let db = &app.services().state.db;
    for (_, env) in &seen {
        let id = uuid::Uuid::parse_str(env["event_id"].as_str().unwrap()).unwrap();
        assert_eq!(
            omninode_bridge::store::event_logs::count_for(db, id)
                .await
                .unwrap(),
            1
        );
    }
    let logged = omninode_bridge::store::event_logs::recent(db, 10_000)
        .await
        .unwrap();
    let row = logged
        .iter()
        .find(|r| r.correlation_id.as_deref() == Some(cid.as_str()))
        .expect("row for the stamp");
    assert_eq!(row.event_type, "event");
    assert_eq!(row.status, "success");
    assert_eq!(row.namespace.as_deref(), Some("events.ns"));
    app.stop().await;
}
