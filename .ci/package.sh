#!/usr/bin/env bash
# What `cargo publish` would upload: packages the library crates (members
# with `publish = false` are skipped) and builds each from its package alone,
# the internal dependencies coming from the packages just made, through a
# temporary local registry.
#
# Cargo treats a registry crate as immutable: it neither re-extracts nor
# rebuilds `nexus-trace-core 0.1.0` from that temporary registry when a later
# run packages different sources under the same version. So the step keeps
# its own target directory and its own CARGO_HOME (sharing the crates.io
# index and downloads), and drops the previous run's copies of our crates
# from both.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}/package-verify"
real_home="${CARGO_HOME:-$HOME/.cargo}"
home="$target/cargo-home"
mkdir -p "$real_home/registry/index" "$real_home/registry/cache" "$home/registry/src"
rm -rf "$home"/registry/src/-*
ln -sfn "$real_home/registry/index" "$home/registry/index"
ln -sfn "$real_home/registry/cache" "$home/registry/cache"
for f in "$real_home"/config.toml "$real_home"/config "$real_home"/registry/src/index.crates.io-*; do
    [ -e "$f" ] || continue
    case "$f" in
        */registry/src/*) ln -sfn "$f" "$home/registry/src/" ;;
        *) ln -sfn "$f" "$home/" ;;
    esac
done
export CARGO_HOME="$home" CARGO_TARGET_DIR="$target"
crates=(nexus-trace-core nexus-trace-http nexus-trace-axum nexus-trace-actix nexus-trace-otlp nexus-trace-tracing)
cargo clean --quiet "${crates[@]/#/-p=}" 2>/dev/null || true
cargo publish --dry-run --workspace --locked
