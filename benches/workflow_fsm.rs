//! Cost of a workflow FSM transition check and of loading/validating the default contract.

use criterion::{criterion_group, criterion_main, Criterion};
use omninode_bridge::workflow::contract::{Contract, BUILTIN};
use omninode_bridge::workflow::fsm::Fsm;

fn fsm(c: &mut Criterion) {
    let fsm = Fsm::standard();
    c.bench_function("fsm_transition_allowed", |b| {
        b.iter(|| {
            fsm.transition(
                std::hint::black_box("processing"),
                std::hint::black_box("completed"),
            )
        })
    });
    c.bench_function("fsm_transition_rejected", |b| {
        b.iter(|| {
            fsm.transition(
                std::hint::black_box("completed"),
                std::hint::black_box("processing"),
            )
        })
    });
    c.bench_function("contract_parse_and_validate", |b| {
        b.iter(|| Contract::parse("bench", BUILTIN[0].1))
    });
}

criterion_group!(benches, fsm);
criterion_main!(benches);
