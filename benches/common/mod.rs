//! Setup shared by the benches that run against PostgreSQL and Kafka (custom `main`; they run only
//! under `cargo bench`, and just start and exit under `cargo test --all-targets`).

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use omninode_bridge::config::Settings;

/// False (after saying how to run it) when cargo did not ask for a benchmark run.
pub fn bench_requested(bench: &str) -> bool {
    let yes = std::env::args().any(|a| a == "--bench");
    if !yes {
        println!("{bench}: run with `cargo bench --bench {bench}` (skipped under cargo test)");
    }
    yes
}

/// A fresh PostgreSQL database and settings pointing at it and at `OMNINODE_BENCH_KAFKA`, with topics
/// of their own (`topic_env` = `env`).
pub struct BenchEnv {
    pub settings: Settings,
    pub brokers: String,
    pub env: String,
    admin: AsyncPgConnection,
    db_name: String,
}

impl BenchEnv {
    pub async fn new(prefix: &str) -> BenchEnv {
        let brokers =
            std::env::var("OMNINODE_BENCH_KAFKA").expect("set OMNINODE_BENCH_KAFKA=host:port");
        let pg = std::env::var("OMNINODE_TEST_PG_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
        let db_name = format!("omninode_bench_{prefix}_{}", std::process::id());
        let mut admin = AsyncPgConnection::establish(&format!("{pg}/postgres"))
            .await
            .expect("postgres");
        admin
            .batch_execute(&format!("CREATE DATABASE {db_name}"))
            .await
            .expect("create db");
        let env = format!("{prefix}bench{}", std::process::id());
        let mut settings =
            Settings::load_from(None, Vec::<(String, String)>::new()).expect("defaults");
        settings.database.url = format!("{pg}/{db_name}");
        settings.kafka.brokers = brokers.clone();
        settings.kafka.topic_env = env.clone();
        settings.kafka.create_topics = true;
        settings.kafka.consumer_group = format!("{env}-group");
        settings.kafka.session_timeout_ms = 2000;
        BenchEnv {
            settings,
            brokers,
            env,
            admin,
            db_name,
        }
    }

    pub async fn drop_db(mut self) {
        let _ = self
            .admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.db_name
            ))
            .await;
    }
}
