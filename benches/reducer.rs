//! Reducer throughput: the pure aggregation core (criterion), and end to end — facts applied through
//! `Reducer::apply` into a fresh PostgreSQL database and a fresh SQLite file (items/s, printed).
//!
//! `cargo bench --bench reducer` (PostgreSQL from OMNINODE_TEST_PG_URL, default
//! postgres://postgres@127.0.0.1:5432).

use std::sync::Arc;
use std::time::Instant;

use criterion::{criterion_group, Criterion, Throughput};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use omninode_bridge::config::Settings;
use omninode_bridge::events::EventFactory;
use omninode_bridge::reducer::core::{aggregate, StampFact};
use omninode_bridge::reducer::Reducer;
use omninode_bridge::store::Db;

fn facts(n: usize, namespaces: usize) -> Vec<StampFact> {
    let types = ["document", "archive", "image", "other"];
    (0..n)
        .map(|i| StampFact {
            event_id: uuid::Uuid::new_v4(),
            namespace: format!("bench.ns{}", i % namespaces),
            file_size: 1024 + (i % 100) as i64,
            file_type: types[i % 4].into(),
            workflow_id: Some(format!("wf{}", i % 1000)),
            at: chrono::Utc::now(),
        })
        .collect()
}

fn pure(c: &mut Criterion) {
    let input = facts(10_000, 100);
    let mut g = c.benchmark_group("reducer_core");
    g.throughput(Throughput::Elements(input.len() as u64));
    g.bench_function("aggregate_10k_facts_100_namespaces", |b| {
        b.iter(|| aggregate(&input))
    });
    g.finish();
}

async fn end_to_end(url: &str, label: &str, n: usize) {
    let mut settings = Settings::load_from(None, Vec::<(String, String)>::new()).expect("defaults");
    settings.database.url = url.to_owned();
    settings.reducer.batch_size = 1000;
    let db = Db::new(&settings.database).expect("db");
    db.migrate().await.expect("migrate");
    let reducer = Reducer::new(
        db,
        EventFactory::new("bench"),
        settings.reducer.clone(),
        Arc::new(tokio::sync::Notify::new()),
    );
    let input = facts(n, 100);
    reducer.apply(&input[..1000]).await.expect("warm-up");
    let started = Instant::now();
    let counted = reducer.apply(&input[1000..]).await.expect("apply");
    let secs = started.elapsed().as_secs_f64();
    println!("reducer end to end, {label}: {counted} items in {secs:.2} s = {:.0} items/s (batches of 1000, 100 namespaces)", counted as f64 / secs);
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("reducer: run with `cargo bench --bench reducer` (skipped under cargo test)");
        return;
    }
    criterion_group!(benches, pure);
    benches();
    Criterion::default().configure_from_args().final_summary();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let pg = std::env::var("OMNINODE_TEST_PG_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
        let name = format!("omninode_bench_reducer_{}", std::process::id());
        let mut admin = AsyncPgConnection::establish(&format!("{pg}/postgres"))
            .await
            .expect("postgres");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create db");
        end_to_end(&format!("{pg}/{name}"), "PostgreSQL", 101_000).await;
        let _ = admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await;
        let dir = tempfile::tempdir().expect("tempdir");
        end_to_end(
            &format!("sqlite://{}", dir.path().join("r.db").display()),
            "SQLite",
            51_000,
        )
        .await;
    });
}
