#!/usr/bin/env bash
# Where the time goes: runs the load benchmark (release build) and samples
# every CPU with `perf` during one phase, then prints the samples by
# category (SQLite's engine, kernel wake-ups, idle, malloc, …) as a
# markdown table — the "where time goes" table of docs/benchmarks.md.
#
#   bash .ci/profile.sh e2e      # the end-to-end phase, 1 worker (default)
#   bash .ci/profile.sh accept   # checkout accept, no worker
#
# Installs Debian's linux-perf when `perf` is missing. Needs permission to
# sample the whole machine (root, or kernel.perf_event_paranoid <= -1).
# Not part of .ci/run: it takes minutes and its figures are for reading.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v perf >/dev/null; then
  as_root apt-get update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends linux-perf
fi

phase="${1:-e2e}"
target="${CARGO_TARGET_DIR:-target}"
cargo build --release -p kassa-api -p kassa-worker
cargo build --release -p tests --bin load-bench
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

case "$phase" in
  e2e)
    # A long end-to-end phase; sampling starts once the backlog is drained.
    args=(--workers 1 --e2e-orders 8000)
    starts_after="backlog drain"
    ;;
  accept)
    args=(--workers 1 --accept-secs 12)
    starts_after="normal: setup"
    ;;
  *) echo "usage: $0 [e2e|accept]" >&2; exit 2 ;;
esac

KASSA_TEST_SKIP_BUILD=1 "$target/release/load-bench" --runs 1 --sync normal --products 2000 \
  --search-requests 100 --read-secs 1 "${args[@]}" >"$out/bench.txt" 2>"$out/bench.err" &
bench=$!
until grep -q "$starts_after" "$out/bench.err"; do
  kill -0 "$bench" 2>/dev/null || { cat "$out/bench.err" >&2; exit 1; }
  sleep 0.2
done
sleep 1
perf record --all-cpus --call-graph fp --freq 299 --output "$out/perf.data" -- sleep 8 2>"$out/perf.err"
wait "$bench"
grep -E "^\| (baseline|checkout accept rate|end to end, 1 worker \()" "$out/bench.txt" || true
echo
python3 .ci/profile_categories.py "$out/perf.data"
