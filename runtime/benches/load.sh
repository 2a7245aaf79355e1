#!/usr/bin/env bash
# Load on the dashboard at 1,000,000 runs: wrk (installed with apt-get when
# missing) with 2 threads and 32 connections for 15 s per URL against the
# dashboard bench's server mode (the user's set-up: the default dashboard,
# its own 4-connection pool on the SQLite file), on the same 2-core machine.
# For each URL: requests per second, latency p50 / p99 (wrk's), and the
# server's CPU time per request (its utime + stime from /proc over the run,
# divided by the requests). Figures go to stdout as a Markdown table.
#
#   CARGO_TARGET_DIR=/work/target-bench bash runtime/benches/load.sh
#   DURATION=15s CONNECTIONS=32 THREADS=2 ROWS=1000000 (defaults)
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-15s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
export TASKTRAIL_BENCH_ROWS=${ROWS:-1000000}
PORT=${PORT:-18399}
if ! command -v wrk >/dev/null; then
  apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
fi
cargo bench -p tasktrail --bench dashboard --no-run 2>/dev/null
log=$(mktemp)
TASKTRAIL_BENCH_SERVE=127.0.0.1:$PORT cargo bench -p tasktrail --bench dashboard >"$log" 2>&1 &
until grep -q '^serving' "$log"; do
  if ! kill -0 $! 2>/dev/null; then cat "$log"; exit 1; fi
  sleep 1
done
# The bench binary: the process listening on the port.
pid=$(ss -ltnp "sport = :$PORT" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
trap 'kill $pid 2>/dev/null || true' EXIT
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
echo "| URL | what | req/s | p50 ms | p99 ms | server CPU ms / request | non-2xx |"
echo "|---|---|---|---|---|---|---|"
grep '^url ' "$log" | while read -r _ name path; do
  url="http://127.0.0.1:$PORT$path"
  # Warm up (caches, the stats snapshot), then measure.
  wrk -t"$THREADS" -c"$CONNECTIONS" -d3s "$url" >/dev/null
  before=$(ticks)
  out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$url")
  after=$(ticks)
  requests=$(echo "$out" | awk '/requests in/ {print $1}')
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
  p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
  bad=$(echo "$out" | awk '/Non-2xx/ {print $5}')
  ms() { case "$1" in *us) echo "${1%us}" | awk '{printf "%.2f", $1/1000}';; *ms) echo "${1%ms}";; *s) echo "${1%s}" | awk '{printf "%.0f", $1*1000}';; esac; }
  cpu=$(awk -v t=$((after - before)) -v hz="$hz" -v n="$requests" 'BEGIN {printf "%.3f", t / hz * 1000 / n}')
  echo "| \`$path\` | $name | $rps | $(ms "$p50") | $(ms "$p99") | $cpu | ${bad:-0} |"
done
