//! Test fixture: start the service on a random port with a fresh database (a temporary SQLite file,
//! or a new PostgreSQL database on the server named by `OMNINODE_TEST_PG_URL`), so tests run in
//! parallel against one real server.
#![allow(dead_code)]

use std::net::TcpListener;
use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use omninode_bridge::app::Services;
use omninode_bridge::config::Settings;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub fn pg_server_url() -> String {
    std::env::var("OMNINODE_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// A fresh, empty database URL for `backend`. Keeps the temp dir alive in the returned guard.
pub struct FreshDb {
    pub url: String,
    pub backend: Backend,
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

impl FreshDb {
    pub async fn new(backend: Backend) -> FreshDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("tempdir");
                let url = format!("sqlite://{}", dir.path().join("test.db").display());
                FreshDb {
                    url,
                    backend,
                    _dir: Some(dir),
                    pg_name: None,
                }
            }
            Backend::Postgres => {
                let name = format!("omninode_test_{}", uuid::Uuid::new_v4().simple());
                let admin = format!("{}/postgres", pg_server_url());
                let mut conn = AsyncPgConnection::establish(&admin)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("PostgreSQL at {admin} is required for the tests: {e}")
                    });
                conn.batch_execute(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create database");
                FreshDb {
                    url: format!("{}/{name}", pg_server_url()),
                    backend,
                    _dir: None,
                    pg_name: Some(name),
                }
            }
        }
    }

    /// The same database for a second service instance (does not drop it).
    pub fn share(&self) -> FreshDb {
        FreshDb {
            url: self.url.clone(),
            backend: self.backend,
            _dir: None,
            pg_name: None,
        }
    }

    pub async fn drop_db(&self) {
        if let Some(name) = &self.pg_name {
            let admin = format!("{}/postgres", pg_server_url());
            if let Ok(mut conn) = AsyncPgConnection::establish(&admin).await {
                let _ = conn
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
            }
        }
    }
}

pub fn settings_for(url: &str) -> Settings {
    let mut s = Settings::load_from(None, Vec::<(String, String)>::new()).expect("defaults");
    s.database.url = url.to_owned();
    s.database.pool_size = 8;
    s.database.acquire_timeout_ms = 1000;
    s.database.connect_timeout_ms = 1000;
    s.database.breaker_open_secs = 1;
    s.http.workers = 2;
    s.http.shutdown_timeout_secs = 2;
    s
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub services: Option<Services>,
    pub server: actix_web::dev::ServerHandle,
    pub db: FreshDb,
}

impl TestApp {
    pub async fn start(backend: Backend) -> TestApp {
        Self::start_with(backend, |_| {}).await
    }

    pub async fn start_with(backend: Backend, tweak: impl FnOnce(&mut Settings)) -> TestApp {
        let db = FreshDb::new(backend).await;
        let mut settings = settings_for(&db.url);
        tweak(&mut settings);
        Self::start_on(db, settings).await
    }

    pub async fn start_on(db: FreshDb, settings: Settings) -> TestApp {
        // RUST_LOG=omninode_bridge=debug shows the service's logs in failing tests.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let services = Services::start(settings).await.expect("services start");
        let server = services.server(listener).expect("server");
        let handle = server.handle();
        tokio::spawn(server);
        TestApp {
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            services: Some(services),
            server: handle,
            db,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn api(&self, path: &str) -> String {
        format!("{}/api/v1/metadata-stamping{path}", self.base)
    }

    pub fn services(&self) -> &Services {
        self.services.as_ref().expect("running")
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let res = self
            .client
            .post(self.api(path))
            .json(body)
            .send()
            .await
            .expect("request");
        let status = res.status().as_u16();
        (status, res.json().await.expect("json body"))
    }

    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, Value) {
        let res = self
            .client
            .post(self.api(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request");
        let status = res.status().as_u16();
        (status, res.json().await.expect("json body"))
    }

    /// GET any path of the service: (status, JSON body).
    pub async fn get_path(&self, path: &str) -> (u16, Value) {
        let res = self
            .client
            .get(self.url(path))
            .send()
            .await
            .expect("request");
        let status = res.status().as_u16();
        (status, res.json().await.expect("json body"))
    }

    /// POST JSON to any path of the service: (status, JSON body).
    pub async fn post_path(&self, path: &str, body: impl serde::Serialize) -> (u16, Value) {
        let res = self
            .client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = res.status().as_u16();
        (status, res.json().await.expect("json body"))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let res = self
            .client
            .get(self.api(path))
            .send()
            .await
            .expect("request");
        let status = res.status().as_u16();
        (status, res.json().await.expect("json body"))
    }

    pub async fn stop(mut self) {
        if let Some(s) = &self.services {
            s.state.closing.cancel();
        }
        self.server.stop(true).await;
        if let Some(s) = self.services.take() {
            s.stop().await;
        }
        self.db.drop_db().await;
    }
}

/// Assert the unified envelope shape and return `data`.
pub fn assert_envelope(body: &Value) {
    for key in ["status", "data", "error", "message", "metadata"] {
        assert!(
            body.get(key).is_some(),
            "envelope key {key} missing in {body}"
        );
    }
}

/// Assert an error envelope: status code, error code and field.
pub fn assert_error(status: u16, body: &Value, want_status: u16, code: &str, field: Option<&str>) {
    assert_envelope(body);
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["status"], "error", "{body}");
    assert_eq!(body["metadata"]["status_code"], want_status, "{body}");
    assert_eq!(body["error"][0]["code"], code, "{body}");
    if let Some(f) = field {
        assert_eq!(body["error"][0]["field"], f, "{body}");
    }
    assert!(
        body["error"][0]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

/// Generate one `#[tokio::test]` per backend for each listed scenario `async fn name(Backend)`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() { super::$name($crate::common::Backend::Sqlite).await }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() { super::$name($crate::common::Backend::Postgres).await }
            )*
        }
    };
}

/// The Kafka broker of the tests (`scripts/test.sh` starts tansu and sets `OMNINODE_TEST_KAFKA`).
pub fn brokers() -> String {
    std::env::var("OMNINODE_TEST_KAFKA").expect(
        "OMNINODE_TEST_KAFKA must name a Kafka broker (scripts/test.sh starts tansu and sets it)",
    )
}

/// A topic environment of its own for one test: its topics, consumer groups and DLQs are new, so
/// nothing another test (or an earlier run against the same broker) produced is seen.
pub fn unique_env() -> String {
    format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}

/// The Kafka profile on `brokers` under the topic environment `env`, with short timeouts for tests.
pub fn kafka_settings(s: &mut Settings, brokers: &str, env: &str) {
    s.kafka.brokers = brokers.to_owned();
    s.kafka.topic_env = env.to_owned();
    s.kafka.create_topics = true;
    s.kafka.consumer_group = format!("{env}-group");
    s.kafka.session_timeout_ms = 2000;
    s.kafka.delivery_timeout_ms = 3000;
}
