#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what is missing,
# then formatting, lints, unit, integration (SQLite + a throwaway
# PostgreSQL started by the harness, a headless Chromium for the
# dashboard's browser tests), trybuild, snapshot and doc tests.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
  if [ "$(id -u)" != 0 ]; then
    echo "missing: $* (run as root or install them)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "$@" >/dev/null
}

# PostgreSQL binaries: the test harness runs initdb/pg_ctl from them.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "== installing postgresql"
  apt_install postgresql
fi

# Chromium and chromedriver: the dashboard's browser tests drive them.
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  echo "== installing chromium chromium-driver"
  apt_install chromium chromium-driver
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
# The published crates package and build on their own, their path
# dependencies on each other resolved through cargo's temporary registry.
# All three are named: one left out is looked up on crates.io, where
# tasktrail-rules is not. --allow-dirty: the script also runs on a work
# tree with uncommitted changes.
echo "== cargo package"
cargo package --allow-dirty -p tasktrail-rules -p tasktrail-macros -p tasktrail
echo "== cargo test"
cargo test --workspace
