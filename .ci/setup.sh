#!/usr/bin/env bash
# Installs what CI needs beyond the stable toolchain.
set -euo pipefail
rustup component add rustfmt clippy
# Chromium for the dashboard's browser test; curl to wait for the demo;
# python3-venv for the collector (rotel, from PyPI) of the interop test.
if ! command -v chromium >/dev/null || ! command -v curl >/dev/null \
    || ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq chromium curl python3-venv >/dev/null
fi
rustup component add --toolchain nightly miri rust-src
if ! command -v cargo-fuzz >/dev/null; then
    cargo install --locked cargo-fuzz
fi
