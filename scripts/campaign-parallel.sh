#!/usr/bin/env bash
# A differential campaign in N shards on one machine with GNU parallel, merged
# into the report a single run gives (docs/oracle.md "Campaigns past one
# machine"). The same shards can run anywhere: each is one `nsvm diff --shard
# i/N --json` process; only the merge needs all the reports.
#
#   scripts/campaign-parallel.sh [-j JOBS] N OUTDIR NSVM [diff options...]
#   e.g. scripts/campaign-parallel.sh 4 out build/nsvm --backend qemu --seed 1 --count 100000
#
# Writes OUTDIR/shard-I.json (each shard's report, one JSON object per vector
# and its summary) and OUTDIR/merged.json (nsvm diff merge --json); exits as
# nsvm diff would have: 0, 1 for an unexplained divergence, 2 for bad input
# or a shard that could not run.
set -euo pipefail

jobs=0   # GNU parallel's default: one job per core
if [[ "${1:-}" == -j ]]; then jobs=$2; shift 2; fi
if (($# < 3)); then
  echo "usage: $0 [-j JOBS] N OUTDIR NSVM [diff options...]" >&2
  exit 2
fi
n=$1 out=$2 nsvm=$3
shift 3
command -v parallel >/dev/null || { echo "$0: GNU parallel is not installed (apt-get install parallel)" >&2; exit 2; }
mkdir -p "$out"
rm -f "$out"/shard-*.json "$out"/merged.json "$out"/joblog

# A shard's own status 1 (a divergence) still leaves a complete report; only
# 2 or more (bad input, a backend that cannot run, a crash) fails the campaign.
# Arguments reach nsvm as given: parallel's ::: feeds only the shard index.
parallel --will-cite --jobs "$jobs" --joblog "$out/joblog" \
  "'$nsvm' diff --json --shard {}/$n $(printf '%q ' "$@") > '$out'/shard-{}.json; s=\$?; [ \$s -le 1 ]" \
  ::: $(seq 0 $((n - 1))) || {
  echo "$0: a shard failed (see $out/joblog and its stderr above)" >&2
  exit 2
}
status=0
"$nsvm" diff merge --json "$out"/shard-*.json > "$out/merged.json" || status=$?
exit "$status"
