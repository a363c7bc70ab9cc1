#!/usr/bin/env bash
# Fuzzing as CI runs it (`.ci/run`, after the lints): build every cargo-fuzz target of fuzz/ once, then
# run each for FUZZ_SECONDS (default 20) from the committed seeds (fuzz/seeds/<target>, read only) plus
# a scratch corpus that libFuzzer grows. Any crash, panic, failed assertion, timeout (> 10 s for one
# input) or memory blow-up (> 2 GiB) fails the script; the reproducer is written to
# fuzz/artifacts/<target>/ (replay it with `RUSTC_BOOTSTRAP=1 cargo fuzz run -s none <target> <file>`).
#
#   scripts/fuzz.sh                      # every target, 20 s each
#   FUZZ_SECONDS=300 scripts/fuzz.sh     # the longer run of docs/BENCHMARKS.md
#   scripts/fuzz.sh json_decode          # some targets only
#   FUZZ_CORPUS=dir scripts/fuzz.sh      # keep the grown corpus in dir/<target> (default: a temp dir)
#
# The instrumented build goes to FUZZ_TARGET_DIR (default ~/.cache/omninode-bridge/fuzz-target, outside
# the checkout like the tansu binary), so a clean checkout on the same machine rebuilds only our crate
# (a few minutes) instead of every dependency (about 15 minutes on 2 cores).
#
# Only a stable toolchain is available: cargo-fuzz's -Z flags pass through RUSTC_BOOTSTRAP=1, and no
# sanitizer is used (`-s none`; the targets are safe Rust, so panics, overflows — debug assertions are
# on — hangs and OOMs are what there is to find). cargo-fuzz is installed when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-20}"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "installing cargo-fuzz (cargo install --locked)" >&2
    cargo install cargo-fuzz --locked --quiet
fi
export RUSTC_BOOTSTRAP=1
target_dir="${FUZZ_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/omninode-bridge/fuzz-target}"
mkdir -p "$target_dir"
flags=(-s none --codegen-units 16 --target-dir "$target_dir")

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

started=$SECONDS
cargo fuzz build "${flags[@]}"
echo "fuzz: built ${#targets[@]} targets in $((SECONDS - started)) s" >&2

corpus="${FUZZ_CORPUS:-}"
if [ -z "$corpus" ]; then
    corpus="$(mktemp -d)"
    trap 'rm -rf "$corpus"' EXIT
fi
for t in "${targets[@]}"; do
    mkdir -p "$corpus/$t"
    echo "fuzz: $t for ${seconds} s" >&2
    cargo fuzz run "${flags[@]}" "$t" "$corpus/$t" "fuzz/seeds/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1
done
echo "fuzz: ${#targets[@]} targets, build and runs took $((SECONDS - started)) s" >&2
