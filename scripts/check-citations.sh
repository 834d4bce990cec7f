#!/usr/bin/env bash
# Comments, docs and messages cite public sources (the APM section, a KVM,
# QEMU, Bochs or Xen function or commit subject) or a file of this
# repository, never notes that exist only outside it: a newcomer cannot open
# those. This fails when a file of the repository cites one, and prints the
# count per directory.
#
#   scripts/check-citations.sh [ROOT]      (ctest: Repository.CitesNoOutsideNotes)
#
# There is no allow-list. PENDING_OUTSIDE_NOTE_CITATIONS names the paths whose
# citations are still being rewritten by their owners; hits there are counted
# and reported, not failed. The list must shrink to empty: an entry with no
# citation left fails the run until it is removed, so each path becomes strict
# as soon as it is clean.
set -euo pipefail

PENDING_OUTSIDE_NOTE_CITATIONS=(
)

root=${1:-"$(cd "$(dirname "$0")/.." && pwd)"}
cd "$root"

# The notes' names are split in two ("apm-" "svm") so that this file does not
# cite them itself and needs no exception.
notes=("apm-""svm" "kvm-""nsvm" "dump-""formats" "user-""pain" "real-""inputs" "updates-""2026" "qemu-""svm"
       "bochs-""svm")
generic=("oracles" "interfaces")  # common words: only their ".md" form is a citation
names=$(IFS='|'; echo "${notes[*]}")
pattern="\\b($names)\\b|\\b(${generic[0]}|${generic[1]})\\.md\\b|\\.\\./shared/|shared/(reference|spec)/|/work/""shared\\b"

# Every file of the tree, tracked or new (so an uncommitted file is checked
# too); without git (a source tarball), every file outside build output.
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    list() { git ls-files -z --cached --others --exclude-standard; }
else
    list() { find . -path ./.git -prune -o -path './build*' -prune -o -type f -print0 | sed -z 's|^\./||'; }
fi

declare -A count=()
failed=0
hits=$(list | xargs -0 -r grep -InE "$pattern" -- 2>/dev/null || true)
while IFS= read -r hit; do
    [[ -z "$hit" ]] && continue
    file=${hit%%:*}
    key=""
    for p in "${PENDING_OUTSIDE_NOTE_CITATIONS[@]}"; do
        if [[ "$file" == "$p" || "$file" == "$p"/* ]]; then key=$p; break; fi
    done
    if [[ -z "$key" ]]; then
        key=$(dirname "$file")
        echo "outside note cited: $hit"
        failed=1
    fi
    count[$key]=$(( ${count[$key]:-0} + 1 ))
done <<< "$hits"

echo "citations of notes outside the repository, per directory:"
for p in "${PENDING_OUTSIDE_NOTE_CITATIONS[@]}"; do
    n=${count[$p]:-0}
    if (( n == 0 )); then
        echo "  $p: 0 (pending) -- clean now: remove it from PENDING_OUTSIDE_NOTE_CITATIONS in $0"
        failed=1
    else
        echo "  $p: $n (pending)"
    fi
done
for key in "${!count[@]}"; do
    pending=0
    for p in "${PENDING_OUTSIDE_NOTE_CITATIONS[@]}"; do [[ "$key" == "$p" ]] && pending=1; done
    (( pending )) || echo "  $key: ${count[$key]} (not allowed)"
done
if (( failed )); then
    echo "FAIL: cite the APM section, the KVM/QEMU/Bochs/Xen function or commit subject, or a file of this repository"
    exit 1
fi
echo "OK: no citation outside the pending paths"
