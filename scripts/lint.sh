#!/usr/bin/env bash
# Formatting, lints and the dependency policy, as CI checks them:
#   cargo fmt --check; cargo clippy --all-targets -D warnings; cargo deny check licenses bans sources
# (cargo-deny is installed with `cargo install --locked` when missing; advisories are not checked
# because the advisory database cannot be fetched on the CI machines).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
if ! command -v cargo-deny >/dev/null 2>&1; then
    echo "installing cargo-deny (cargo install --locked)" >&2
    cargo install cargo-deny --locked --quiet
fi
cargo deny --log-level error check licenses bans sources
