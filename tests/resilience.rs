//! The service under failure: the database going away and coming back, the process killed with -9
//! during a burst, migrations up/down/up, bad configuration refused at start.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{assert_error, pg_server_url, Backend, FreshDb, TestApp};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// A TCP proxy in front of PostgreSQL that can be cut (every connection dropped, new ones refused)
/// and restored, to play "the database went away".
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    cut: std::sync::Mutex<CancellationToken>,
}

impl Proxy {
    async fn start(upstream: String) -> Arc<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = Arc::new(Proxy {
            port: listener.local_addr().unwrap().port(),
            up: Arc::new(AtomicBool::new(true)),
            cut: std::sync::Mutex::new(CancellationToken::new()),
        });
        let p = proxy.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !p.up.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let token = p.cut.lock().unwrap().clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = token.cancelled() => {}
                    }
                });
            }
        });
        proxy
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        let mut guard = self.cut.lock().unwrap();
        guard.cancel();
        *guard = CancellationToken::new();
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_answers_503_fast_and_recovers() {
    let db = FreshDb::new(Backend::Postgres).await;
    let upstream = pg_server_url()
        .trim_start_matches("postgres://")
        .rsplit('@')
        .next()
        .unwrap()
        .to_owned();
    let proxy = Proxy::start(upstream).await;
    let name = db.url.rsplit('/').next().unwrap().to_owned();
    let mut settings = common::settings_for(&format!(
        "postgres://postgres@127.0.0.1:{}/{name}",
        proxy.port
    ));
    settings.database.breaker_open_secs = 1;
    let app = TestApp::start_on(db, settings).await;

    let (s, _) = app
        .post_json("/stamp", &json!({"content": "before the outage"}))
        .await;
    assert_eq!(s, 200);

    proxy.cut();
    for i in 0..5 {
        let started = Instant::now();
        let (s, b) = app
            .post_json(
                "/stamp",
                &json!({"content": format!("during the outage {i}")}),
            )
            .await;
        assert_error(s, &b, 503, "DATABASE_UNAVAILABLE", None);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "503 took {:?}",
            started.elapsed()
        );
        let (s, b) = app
            .get("/stamp/288a86a79f20a3d6dccdca7713beaed178798296bdfa7913fa2a62d9727bf8f8")
            .await;
        assert_error(s, &b, 503, "DATABASE_UNAVAILABLE", None);
    }
    let started = Instant::now();
    let (s, b) = app.get("/health/ready").await;
    assert_eq!(s, 503, "{b}");
    assert!(started.elapsed() < Duration::from_secs(3));
    let (s, h) = app.get("/health").await;
    assert_eq!(s, 200);
    assert_eq!(h["data"]["status"], "unhealthy");
    // The 503s came from the breaker, not only from the acquire timeout: it opened (open, or
    // half-open once its 1 s period passed) after the consecutive connection failures.
    let breaker = &h["data"]["components"]["database"]["circuit_breaker"];
    assert!(
        breaker["state"] == "open" || breaker["state"] == "half_open",
        "breaker after the outage: {breaker}"
    );
    assert!(
        breaker["consecutive_failures"].as_u64().unwrap_or(0) >= 3,
        "{breaker}"
    );
    // Requests that need no database still work.
    let (s, _) = app
        .post_raw("/hash", "application/octet-stream", "still hashing")
        .await;
    assert_eq!(s, 200);

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (s, _) = app
            .post_json("/stamp", &json!({"content": "after the outage"}))
            .await;
        if s == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "service did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (s, _) = app.get("/health/ready").await;
    assert_eq!(s, 200);
    let (_, h) = app.get("/health").await;
    assert_eq!(
        h["data"]["components"]["database"]["circuit_breaker"]["state"], "closed",
        "a success closes the breaker: {h}"
    );
    let (_, list) = app.get("/namespace/omninode.services.metadata").await;
    assert_eq!(
        list["data"]["total_stamps"], 2,
        "nothing half-written during the outage"
    );
    app.stop().await;
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Service {
    child: Child,
    base: String,
}

fn spawn_service(db_url: &str, port: u16, kafka: Option<(&str, &str)>) -> Service {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_omninode-bridge"));
    if let Some((brokers, env)) = kafka {
        cmd.env("OMNINODE__KAFKA__BROKERS", brokers)
            .env("OMNINODE__KAFKA__TOPIC_ENV", env)
            .env("OMNINODE__KAFKA__CREATE_TOPICS", "true")
            .env("OMNINODE__KAFKA__CONSUMER_GROUP", format!("{env}-group"))
            .env("OMNINODE__KAFKA__SESSION_TIMEOUT_MS", "2000");
    }
    let child = cmd
        .arg("serve")
        .env("OMNINODE__DATABASE__URL", db_url)
        .env("OMNINODE__HTTP__BIND", format!("127.0.0.1:{port}"))
        .env("OMNINODE__HTTP__WORKERS", "2")
        .env("OMNINODE__LOG__LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn service");
    Service {
        child,
        base: format!("http://127.0.0.1:{port}"),
    }
}

async fn wait_ready(client: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client
            .get(format!("{base}/api/v1/metadata-stamping/health/ready"))
            .send()
            .await
        {
            if r.status() == 200 {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "service at {base} did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every stamp acknowledged with 200 before a SIGKILL is still there after restart, and so is its
/// `metadata-stamp-created` event: recorded in `event_logs` exactly once (through the in-process bus,
/// or through Kafka when `kafka` names a broker).
async fn kill_9_during_burst_loses_no_acknowledged_stamp(backend: Backend, kafka: Option<&str>) {
    let db = FreshDb::new(backend).await;
    let port = free_port();
    let topic_env = format!("k{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let kafka = kafka.map(|b| (b, topic_env.as_str()));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut svc = spawn_service(&db.url, port, kafka);
    wait_ready(&client, &svc.base).await;

    let acked = Arc::new(std::sync::Mutex::new(Vec::<(String, String)>::new()));
    let stop = CancellationToken::new();
    let mut workers = Vec::new();
    for w in 0..16 {
        let (client, base, acked, stop) = (
            client.clone(),
            svc.base.clone(),
            acked.clone(),
            stop.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.is_cancelled() {
                i += 1;
                let body = json!({"content": format!("burst {w} {i}"), "namespace": "burst"});
                let res = client
                    .post(format!("{base}/api/v1/metadata-stamping/stamp"))
                    .json(&body)
                    .send()
                    .await;
                match res {
                    Ok(r) if r.status() == 200 => {
                        if let Ok(v) = r.json::<Value>().await {
                            let hash = v["data"]["file_hash"]
                                .as_str()
                                .unwrap_or_default()
                                .to_owned();
                            let id = v["data"]["stamp_id"]
                                .as_str()
                                .unwrap_or_default()
                                .to_owned();
                            acked.lock().unwrap().push((hash, id));
                        }
                    }
                    _ => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    svc.child.kill().expect("SIGKILL");
    let _ = svc.child.wait();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.cancel();
    for w in workers {
        let _ = w.await;
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 20,
        "burst too small to mean anything: {}",
        acked.len()
    );

    let mut svc = spawn_service(&db.url, port, kafka);
    wait_ready(&client, &svc.base).await;
    for (hash, id) in &acked {
        let r = client
            .get(format!(
                "{}/api/v1/metadata-stamping/stamp/{hash}?namespace=burst",
                svc.base
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "acknowledged stamp {hash} lost");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["data"]["id"], id.as_str());
    }
    // Their events: every acknowledged stamp's event is recorded, none twice.
    let mut settings = common::settings_for(&db.url);
    settings.database.pool_size = 2;
    let store = omninode_bridge::store::Db::new(&settings.database).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rows = omninode_bridge::store::event_logs::recent(&store, 100_000)
            .await
            .unwrap();
        let mut seen = std::collections::HashMap::<String, usize>::new();
        for r in rows
            .iter()
            .filter(|r| r.topic.ends_with("metadata-stamp-created.v1"))
        {
            *seen
                .entry(
                    r.payload.0["stamp_id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                )
                .or_default() += 1;
        }
        assert!(
            seen.values().all(|n| *n == 1),
            "an event was recorded twice"
        );
        let missing = acked
            .iter()
            .filter(|(_, id)| !seen.contains_key(id))
            .count();
        if missing == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} of {} acknowledged stamps have no event",
            acked.len()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // The reducer's aggregate counts every stored stamp exactly once (acknowledged or not when the
    // process died), after catching up.
    let stored: Value = client
        .get(format!(
            "{}/api/v1/metadata-stamping/namespace/burst?limit=1",
            svc.base
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let want = stored["data"]["total_stamps"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let agg: Value = client
            .get(format!("{}/api/v1/aggregations/burst", svc.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let got = agg["data"]["total_stamps"].as_i64().unwrap_or(0);
        assert!(got <= want, "aggregate over-counted: {got} > {want}");
        if got == want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "aggregate {got} of {want} stamps after restart"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let _ = svc.child.kill();
    let _ = svc.child.wait();
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_burst_sqlite() {
    kill_9_during_burst_loses_no_acknowledged_stamp(Backend::Sqlite, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_burst_postgres_kafka() {
    let brokers = std::env::var("OMNINODE_TEST_KAFKA").expect(
        "OMNINODE_TEST_KAFKA must name a Kafka broker (scripts/test.sh starts tansu and sets it)",
    );
    kill_9_during_burst_loses_no_acknowledged_stamp(Backend::Postgres, Some(&brokers)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_burst_postgres() {
    kill_9_during_burst_loses_no_acknowledged_stamp(Backend::Postgres, None).await;
}

#[test]
fn bad_configuration_is_refused_naming_the_key() {
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str], &'a str);
    let cases: &[Case] = &[
        (
            &[("OMNINODE__HTTP__BIND", "not-an-address")],
            &["serve"],
            "http.bind",
        ),
        (
            &[("OMNINODE__DATABASE__URL", "mysql://x")],
            &["serve"],
            "database.url",
        ),
        (
            &[("OMNINODE__STAMPING__MAX_BATCH_ITEMS", "lots")],
            &["serve"],
            "max_batch_items",
        ),
        (&[("OMNINODE__LOG__FORMAT", "xml")], &["migrate"], "format"),
        (
            &[],
            &["serve", "--config", "/nonexistent/omninode.toml"],
            "--config",
        ),
        (
            &[],
            &["--config", "/nonexistent/omninode.toml", "serve"],
            "--config",
        ),
    ];
    for (env, args, named) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_omninode-bridge"))
            .args(*args)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{env:?} {args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(named), "{env:?} {args:?}: {stderr}");
    }
}

#[test]
fn config_file_is_accepted_before_or_after_the_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!("[database]\nurl = \"sqlite://{}\"\n", db.display()),
    )
    .unwrap();
    for args in [
        vec!["--config", cfg.to_str().unwrap(), "migrate"],
        vec!["migrate", "--config", cfg.to_str().unwrap()],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_omninode-bridge"))
            .args(&args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(db.exists());
}

/// Every migration runs up, down and up again on both backends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_run_up_down_up() {
    use diesel_migrations::MigrationHarness;
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let db = FreshDb::new(backend).await;
        let url = db.url.clone();
        tokio::task::spawn_blocking(move || match backend {
            Backend::Sqlite => {
                use diesel::Connection;
                let path = url.trim_start_matches("sqlite://");
                let mut c = diesel::SqliteConnection::establish(path).unwrap();
                let m = || omninode_bridge::store::SQLITE_MIGRATIONS;
                assert!(!c.run_pending_migrations(m()).unwrap().is_empty());
                c.revert_all_migrations(m()).unwrap();
                assert!(!c.run_pending_migrations(m()).unwrap().is_empty());
            }
            Backend::Postgres => {
                use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
                type Wrapper = AsyncConnectionWrapper<diesel_async::AsyncPgConnection>;
                let mut c = <Wrapper as diesel::Connection>::establish(&url).unwrap();
                let m = || omninode_bridge::store::PG_MIGRATIONS;
                assert!(!c.run_pending_migrations(m()).unwrap().is_empty());
                c.revert_all_migrations(m()).unwrap();
                assert!(!c.run_pending_migrations(m()).unwrap().is_empty());
            }
        })
        .await
        .unwrap();
        db.drop_db().await;
    }
}

/// SIGTERM lets in-flight requests finish, then the process exits cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let port = free_port();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let mut svc = spawn_service(&url, port, None);
    wait_ready(&client, &svc.base).await;
    // A request that takes a while: a 200 MiB upload, streamed slowly in 1 MiB chunks.
    let chunks = futures_util::stream::unfold(0u32, |i| async move {
        if i == 200 {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        Some((Ok::<_, std::io::Error>(vec![b'x'; 1 << 20]), i + 1))
    });
    let req = client
        .post(format!("{}/api/v1/metadata-stamping/hash", svc.base))
        .header("content-type", "application/octet-stream")
        .body(reqwest::Body::wrap_stream(chunks))
        .send();
    let in_flight = tokio::spawn(req);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = svc.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let res = in_flight
        .await
        .unwrap()
        .expect("in-flight request completed");
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["data"]["file_size_bytes"], 200u64 << 20);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = svc.child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "process did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // New connections are refused once it is gone.
    assert!(client
        .get(format!("{}/health", svc.base))
        .send()
        .await
        .is_err());
}

/// Workflows running when the process is killed are not left in `processing`: after a restart (same
/// database) their expired leases are taken over and every one ends `completed` or `failed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_workflows_leaves_none_processing() {
    let db = FreshDb::new(Backend::Postgres).await;
    let port = free_port();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_omninode-bridge"))
            .arg("serve")
            .env("OMNINODE__DATABASE__URL", &db.url)
            .env("OMNINODE__HTTP__BIND", format!("127.0.0.1:{port}"))
            .env("OMNINODE__WORKFLOW__LEASE_SECS", "2")
            .env("OMNINODE__LOG__LEVEL", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let base = format!("http://127.0.0.1:{port}");
    let mut child = spawn();
    wait_ready(&client, &base).await;
    let mut ids = Vec::new();
    for i in 0..60 {
        let r = client
            .post(format!("{base}/api/v1/workflows"))
            .json(&json!({"content": format!("killed workflow {i}"), "namespace": "wf.kill"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let v: Value = r.json().await.unwrap();
        ids.push(v["data"]["workflow_id"].as_str().unwrap().to_owned());
    }
    child.kill().unwrap();
    let _ = child.wait();
    let mut child = spawn();
    wait_ready(&client, &base).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut unfinished = 0;
        for id in &ids {
            let v: Value = client
                .get(format!("{base}/api/v1/workflows/{id}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let state = v["data"]["state"].as_str().unwrap_or("missing").to_owned();
            // A crash is not a reason to fail: every interrupted workflow is resumed and completes.
            assert_ne!(
                state, "failed",
                "workflow {id} failed after the takeover: {v}"
            );
            if state != "completed" {
                unfinished += 1;
            }
        }
        if unfinished == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{unfinished} workflows still unfinished after restart"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    db.drop_db().await;
}
