//! Stamp render / extract / validate cost on 1 KiB of content.

use criterion::{criterion_group, criterion_main, Criterion};
use omninode_bridge::stamping::core::{self, StampInput, StampType};

fn stamps(c: &mut Criterion) {
    let body = "The quick brown fox jumps over the lazy dog. 0123456789\n".repeat(19);
    let input = StampInput {
        uid: Some("123e4567-e89b-12d3-a456-426614174000"),
        timestamp: Some("2025-01-01T12:00:00.000000+00:00"),
        ..Default::default()
    };
    let light = core::render_stamp(&body, StampType::Lightweight, &input).stamped_content;
    let rich = core::render_stamp(&body, StampType::Rich, &input).stamped_content;
    let mut g = c.benchmark_group("stamp_1KiB");
    g.bench_function("render_lightweight", |b| {
        b.iter(|| core::render_stamp(&body, StampType::Lightweight, &input))
    });
    g.bench_function("render_rich", |b| {
        b.iter(|| core::render_stamp(&body, StampType::Rich, &input))
    });
    g.bench_function("extract_rich", |b| b.iter(|| core::extract_stamps(&rich)));
    g.bench_function("validate_lightweight", |b| {
        b.iter(|| core::validate(&light, None))
    });
    g.bench_function("validate_rich", |b| b.iter(|| core::validate(&rich, None)));
    g.finish();
}

criterion_group!(benches, stamps);
criterion_main!(benches);
