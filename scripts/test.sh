#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what is missing,
# then formatting, lints, unit, integration (SQLite + a throwaway
# PostgreSQL started by the harness, a headless Chromium for the
# dashboard's browser tests), trybuild, snapshot and doc tests.
set -euo pipefail
cd "$(dirname "$0")/.."
# A whole-suite run builds everything once: incremental state (7 GB on a
# clean build) buys nothing here. Set CARGO_INCREMENTAL=1 to keep it.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

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

# MariaDB: the harness (tests/harness/src/mysql.rs) runs mariadb-install-db
# and mariadbd from it.
if ! [ -x /usr/sbin/mariadbd ]; then
  echo "== installing mariadb-server"
  apt_install mariadb-server
fi

# Chromium and chromedriver: the dashboard's browser tests drive them.
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  echo "== installing chromium chromium-driver"
  apt_install chromium chromium-driver
fi

# OpenSSL's headers: the feature matrix builds `runtime-tokio-native-tls`.
if ! dpkg -s libssl-dev pkg-config >/dev/null 2>&1; then
  echo "== installing libssl-dev pkg-config"
  apt_install libssl-dev pkg-config
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== feature matrix: tasktrail alone with each set of features (lib, clippy)"
# One package at a time, so cargo does not unify the workspace's features
# into it: what a user with these features compiles.
for features in sqlite postgres mysql postgres,dashboard sqlite,dashboard,openapi mysql,auth; do
  echo "-- --no-default-features --features $features"
  cargo clippy -p tasktrail --no-default-features --features "$features" -- -D warnings
done
echo "-- --all-features"
cargo clippy -p tasktrail --all-features -- -D warnings
echo "== tracker-only user: one backend, no dashboard or auth in its build"
tree=$(cargo tree -p tracker-only -e features)
if grep -E "libsqlite3-sys|sqlx-sqlite|axum|askama|argon2" <<<"$tree"; then
  echo "the tracker-only example's PostgreSQL build has the crates above" >&2
  exit 1
fi
tree=$(cargo tree -p tracker-only --no-default-features --features sqlite -e features)
if grep -E "sqlx-postgres|axum|askama|argon2" <<<"$tree"; then
  echo "the tracker-only example's SQLite build has the crates above" >&2
  exit 1
fi
cargo test -p tracker-only
tree=$(cargo tree -p tracker-only --no-default-features --features mysql -e features)
if grep -E "libsqlite3-sys|sqlx-sqlite|sqlx-postgres|axum|askama|argon2" <<<"$tree"; then
  echo "the tracker-only example's MySQL build has the crates above" >&2
  exit 1
fi
cargo test -p tracker-only --no-default-features --features sqlite
cargo test -p tracker-only --no-default-features --features mysql
# The published crates package and build on their own, their path
# dependencies on each other resolved through cargo's temporary registry.
# All three are named: one left out is looked up on crates.io, where
# tasktrail-rules is not. --allow-dirty: the script also runs on a work
# tree with uncommitted changes.
echo "== cargo package"
cargo package --allow-dirty -p tasktrail-rules -p tasktrail-macros -p tasktrail
echo "== cargo test"
cargo test --workspace --exclude tracker-only
