#!/usr/bin/env bash
# A 4-shard campaign run by GNU parallel (scripts/campaign-parallel.sh) and
# merged with `nsvm diff merge` gives the summary a single run gives: the
# boundary set and a seeded random set on the reference exec backend (fast,
# no emulator). Also: merge refuses a missing or repeated shard, shards of
# another campaign, a cut report.
#
#   tests/cli/campaign_parallel_test.sh BUILD_DIR
set -euo pipefail

build=$(cd "$1" && pwd)
src=$(cd "$(dirname "$0")/../.." && pwd)
nsvm=$build/nsvm
backend="exec:$build/nsvm_exec_backend"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# The summary without what depends on how the run went (jobs, boots, times).
what_it_found() {
  python3 -c '
import json, sys
s = json.loads(open(sys.argv[1]).read().splitlines()[-1])["summary"]
for k in ("jobs", "boots", "emulator_seconds", "wall_seconds", "vectors_per_second"):
    s.pop(k)
print(json.dumps(s, sort_keys=True, indent=1))' "$1"
}

campaign() {  # name, diff options...
  local name=$1
  shift
  "$nsvm" diff --json --backend "$backend" "$@" > "$work/$name-single.json" || fail "$name: single run"
  "$src/scripts/campaign-parallel.sh" -j 2 4 "$work/$name" "$nsvm" --backend "$backend" "$@" ||
    fail "$name: the sharded campaign"
  what_it_found "$work/$name-single.json" > "$work/$name-single.txt"
  what_it_found "$work/$name/merged.json" > "$work/$name-merged.txt"
  diff -u "$work/$name-single.txt" "$work/$name-merged.txt" || fail "$name: merged summary differs from the single run's"
  grep -q '"total": 0' "$work/$name-single.txt" && fail "$name: no vectors"
  echo "ok: $name: 4 shards merged = the single run ($(grep -m1 '"total"' "$work/$name-single.txt" | tr -d ' ,'))"
}

campaign boundary --boundary
campaign random --seed 11 --count 3000

# What merge refuses (exit 2, naming the file).
expect_refused() {  # message, reports...
  local msg=$1 out
  shift
  if out=$("$nsvm" diff merge --json "$@" 2>&1 >/dev/null); then fail "merge accepted: $msg"; fi
  [[ $? -eq 2 ]] || true
  grep -qF -- "$msg" <<<"$out" || fail "merge: expected '$msg', got: $out"
}
r=$work/random
set +e
"$nsvm" diff merge "$r"/shard-0.json "$r"/shard-1.json "$r"/shard-2.json > /dev/null 2>&1
[[ $? -eq 2 ]] || fail "a missing shard is not exit 2"
set -e
expect_refused "shard 3/4 missing" "$r"/shard-0.json "$r"/shard-1.json "$r"/shard-2.json
expect_refused "shard 1/4 again" "$r"/shard-0.json "$r"/shard-1.json "$r"/shard-1.json "$r"/shard-2.json "$r"/shard-3.json
expect_refused "not a shard of the campaign" "$r"/shard-0.json "$work"/boundary/shard-1.json "$r"/shard-2.json "$r"/shard-3.json
head -n 5 "$r"/shard-2.json > "$work/cut.json"
expect_refused "cut.json:5: summary: missing" "$r"/shard-0.json "$r"/shard-1.json "$work/cut.json" "$r"/shard-3.json
{ head -n 5 "$r"/shard-2.json; tail -n 1 "$r"/shard-2.json; } > "$work/short.json"
expect_refused "short.json:6: summary.total" "$r"/shard-0.json "$r"/shard-1.json "$work/short.json" "$r"/shard-3.json
sed '$s/"summary":{"total"/"summary":{"colour":1,"total"/' "$r"/shard-2.json > "$work/member.json"
expect_refused "summary.colour: unknown member" "$r"/shard-0.json "$r"/shard-1.json "$work/member.json" "$r"/shard-3.json
echo "ok: merge refuses missing, repeated, foreign, cut and malformed shards"
