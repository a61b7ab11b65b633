#!/usr/bin/env bash
# Installs what CI needs beyond the stable toolchain.
set -euo pipefail
rustup component add rustfmt clippy
rustup component add --toolchain nightly miri rust-src
if ! command -v cargo-fuzz >/dev/null; then
    cargo install --locked cargo-fuzz
fi
