#!/usr/bin/env bash
# What `#[derive(TrackingConfig)]` and `dashboard!` add to a user's build,
# against serde's derives measured in the same run (BENCHMARKS.md, "What
# the derive costs to compile").
#
#   macros/benches/compile-cost.sh            # 5 rounds
#   ROUNDS=9 macros/benches/compile-cost.sh
#
# 1. `cargo check` of one crate with 20 sea-orm entities, three ways:
#    plain (DeriveEntityModel only), + serde's Serialize/Deserialize on each
#    Model, + TrackingConfig and a dashboard! each. Dependencies are built
#    first; each round touches the crate and times its check alone. The
#    figures are the medians; "added" is the time over the plain crate.
# 2. `cargo build` from an empty target dir of a minimal tracker-only user
#    (tasktrail with default-features = false, features = ["postgres"]) and
#    of a dashboard user (the defaults and "postgres"), one entity each.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
rounds=${ROUNDS:-5}
entities=${ENTITIES:-20}
work=$(mktemp -d /tmp/tasktrail-compile-cost.XXXXXX)
trap 'rm -rf "$work"' EXIT

entity() { # $1: index, $2: extra derives, $3: with dashboard
  cat <<RS
pub mod run_$1 {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel$2)]
    #[sea_orm(table_name = "runs_$1")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        #[sea_orm(unique)]
        pub task_key: String,
        pub task_name: String,
        pub status: String,
        pub message: Option<String>,
        pub progress_payload: Option<f32>,
        pub user_label: Option<String>,
        pub affected_objects: Option<String>,
        pub task_args: Option<Json>,
        pub result_payload: Option<Json>,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
        pub started_at: Option<DateTimeUtc>,
        pub completed_at: Option<DateTimeUtc>,
        pub failed_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
RS
  if [ "$3" = yes ]; then
    cat <<RS

    tasktrail::dashboard! {
        /// Runs of kind $1.
        pub struct Ops<Entity> {
            title: "Runs $1",
            url_prefix: "/ops/runs-$1",
            columns: [task_name, status, user_label, created_at],
            filters: [status, task_name],
            search: [task_name, message],
            sort: created_at desc,
            actions: [cancel, retry, delete],
        }
    }
RS
  fi
  echo "}"
}

crate_dir() { # $1: name, $2: tasktrail dependency line, $3: extra derives, $4: dashboard, $5: entities
  local dir="$work/$1"
  mkdir -p "$dir/src"
  cat > "$dir/Cargo.toml" <<TOML
[package]
name = "$1"
version = "0.1.0"
edition = "2024"

[dependencies]
$2
sea-orm = { version = "2.0.4", default-features = false, features = ["macros", "with-json", "with-chrono"] }
serde = { version = "1", features = ["derive"] }
serde_json = "1"

[workspace]
TOML
  cp "$root/Cargo.lock" "$dir/Cargo.lock"
  : > "$dir/src/lib.rs"
  echo '#![allow(dead_code)]' >> "$dir/src/lib.rs"
  for i in $(seq 1 "$5"); do entity "$i" "$3" "$4" >> "$dir/src/lib.rs"; done
  echo "$dir"
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

time_check() { # $1: crate dir; prints the median seconds of its own check
  local dir=$1
  (cd "$dir" && CARGO_TARGET_DIR="$work/target-check" cargo check -q 2>&1 >/dev/null) || {
    (cd "$dir" && CARGO_TARGET_DIR="$work/target-check" cargo check); exit 1; }
  for _ in $(seq 1 "$rounds"); do
    touch "$dir/src/lib.rs"
    local start end
    start=$(date +%s.%N)
    (cd "$dir" && CARGO_TARGET_DIR="$work/target-check" cargo check -q)
    end=$(date +%s.%N)
    echo "$end - $start" | bc
  done | median
}

tt="tasktrail = { path = \"$root/runtime\", features = [\"postgres\"] }"
plain=$(crate_dir plain "$tt" "" no "$entities")
serde=$(crate_dir serde "$tt" ", serde::Serialize, serde::Deserialize" no "$entities")
tracked=$(crate_dir tracked "$tt" ", tasktrail::TrackingConfig" yes "$entities")

echo "== cargo check, $entities entities, median of $rounds (s)"
t_plain=$(time_check "$plain")
t_serde=$(time_check "$serde")
t_tracked=$(time_check "$tracked")
add_serde=$(echo "$t_serde - $t_plain" | bc -l)
add_tracked=$(echo "$t_tracked - $t_plain" | bc -l)
ratio=$(echo "$add_tracked / $add_serde" | bc -l)
printf '| crate | check (s) | added over plain (s) |\n|---|---|---|\n'
printf '| plain (DeriveEntityModel) | %.2f | |\n' "$t_plain"
printf '| + serde Serialize/Deserialize | %.2f | %.2f |\n' "$t_serde" "$add_serde"
printf '| + TrackingConfig + dashboard! | %.2f | %.2f |\n' "$t_tracked" "$add_tracked"
printf 'tasktrail added / serde added: %.2fx\n' "$ratio"

[ -n "${SKIP_FULL:-}" ] && exit 0
echo "== cargo build from an empty target dir, one entity (s)"
only=$(crate_dir tracker_only "tasktrail = { path = \"$root/runtime\", default-features = false, features = [\"postgres\"] }" ", tasktrail::TrackingConfig" no 1)
dash=$(crate_dir dashboard_user "$tt" ", tasktrail::TrackingConfig" yes 1)
full_build() {
  local start end
  start=$(date +%s.%N)
  (cd "$1" && CARGO_TARGET_DIR="$work/target-$2" cargo build -q)
  end=$(date +%s.%N)
  echo "$end - $start" | bc
}
b_only=$(full_build "$only" only)
b_dash=$(full_build "$dash" dash)
printf '| user crate | full build (s) | crates compiled |\n|---|---|---|\n'
printf '| tracker only (postgres) | %.1f | %s |\n' "$b_only" "$(ls "$work/target-only/debug/deps" | grep -c '\.rlib$' || true)"
printf '| dashboard (defaults + postgres) | %.1f | %s |\n' "$b_dash" "$(ls "$work/target-dash/debug/deps" | grep -c '\.rlib$' || true)"
