#!/usr/bin/env bash
# Side by side under the same load: builds of the dashboard bench (its
# server mode, as load.sh runs it) taking turns, so that a machine whose
# speed drifts (a shared VM) weighs on each alike. For each round and each
# executable: wrk -t2 -c32, 3 s of warm-up, then 10 s measured; prints
# requests per second, wrk's p99 and the server's CPU time per request.
#
#   # two builds, e.g. the default and SQLite without memory statistics:
#   CARGO_TARGET_DIR=/work/target-bench cargo bench -p tasktrail --bench dashboard --no-run
#   LIBSQLITE3_FLAGS="-DSQLITE_DEFAULT_MEMSTATUS=0" CARGO_TARGET_DIR=/work/target-bench2 \
#     cargo bench -p tasktrail --bench dashboard --no-run
#   bash runtime/benches/load_ab.sh /ops/tasks/runs 2 EXECUTABLE...
#
# The executables are the paths cargo prints ("Executable benches/dashboard.rs
# (…)"); copy each elsewhere first if two builds share a name. The SQLite
# file is the one in CARGO_TARGET_DIR (default /work/target-bench).
set -euo pipefail
cd "$(dirname "$0")/.."
path=$1; rounds=$2; shift 2
PORT=${PORT:-18399}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target-bench}
export TASKTRAIL_BENCH_ROWS=${ROWS:-1000000}
for _ in $(seq "$rounds"); do
  for exe in "$@"; do
    log=$(mktemp)
    TASKTRAIL_BENCH_SERVE=127.0.0.1:$PORT "$exe" --bench >"$log" 2>&1 &
    server=$!
    until grep -q '^serving' "$log"; do
      if ! kill -0 $server 2>/dev/null; then cat "$log"; exit 1; fi
      sleep 1
    done
    wrk -t2 -c32 -d3s "http://127.0.0.1:$PORT$path" >/dev/null
    # The server's CPU time over the run (utime + stime of the process
    # listening on the port: the executable itself, under any wrapper).
    pid=$(ss -ltnp "sport = :$PORT" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
    before=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    out=$(wrk -t2 -c32 -d10s --latency "http://127.0.0.1:$PORT$path")
    after=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    echo "$out" | awk -v exe="$exe" -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" \
      '/requests in/ {n = $1} /Requests\/sec/ {r = $2} $1 == "99%" {p = $2}
       END {printf "%s %s req/s, p99 %s, server CPU %.3f ms/request\n", exe, r, p, t / hz * 1000 / n}'
    kill $server; wait $server 2>/dev/null || true
    rm -f "$log"
  done
done
