//! BLAKE3 hashing throughput of the paths the API uses: raw bytes (`POST /hash`, streamed in 64 KiB
//! chunks as actix delivers them) and canonical content (stamp/validate).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use omninode_bridge::stamping::core;

const SIZES: &[(&str, usize)] = &[
    ("40B", 40),
    ("1KiB", 1024),
    ("100KiB", 100 * 1024),
    ("1MiB", 1024 * 1024),
    ("64MiB", 64 * 1024 * 1024),
];

fn content(len: usize) -> String {
    let line = "The quick brown fox jumps over the lazy dog. 0123456789\n";
    line.repeat(len / line.len() + 1)[..len].to_owned()
}

fn hashing(c: &mut Criterion) {
    let mut group = c.benchmark_group("hash");
    for &(name, len) in SIZES {
        let data = content(len);
        group.throughput(Throughput::Bytes(len as u64));
        if len >= 64 * 1024 * 1024 {
            group.sample_size(10);
        } else {
            group.sample_size(50);
        }
        group.bench_with_input(BenchmarkId::new("raw", name), &data, |b, d| {
            b.iter(|| core::hash_bytes(d.as_bytes()))
        });
        group.bench_with_input(
            BenchmarkId::new("streamed_64k_chunks", name),
            &data,
            |b, d| {
                b.iter(|| {
                    let mut h = blake3::Hasher::new();
                    for chunk in d.as_bytes().chunks(64 * 1024) {
                        h.update(chunk);
                    }
                    h.finalize()
                })
            },
        );
        group.bench_with_input(BenchmarkId::new("canonical", name), &data, |b, d| {
            b.iter(|| core::canonical_hash(d))
        });
    }
    group.finish();
}

criterion_group!(benches, hashing);
criterion_main!(benches);
