#!/usr/bin/env bash
# Hostile-input acceptance run (docs/limits.md): every class of hostile input
# found in review, fed to the CLI under a 2 GiB address-space limit and a 30 s
# timeout. Each case must end with the exit status it names and a message on
# stderr: no signal, no timeout, no "internal error", no raw control byte.
#
#   tests/hostile/hostile.sh path/to/nsvm
#
# The inputs are generated here, in a temporary directory (some are tens of
# megabytes; none is committed). ctest runs this as Hostile.Inputs.
set -uo pipefail

NSVM=$(realpath "${1:?usage: hostile.sh path/to/nsvm}")
SRC=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/nsvm-hostile.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"

LIMIT_KB=$((2 * 1024 * 1024))  # ulimit -v: 2 GiB
TIMEOUT=30
passed=0
failed=0

# case NAME EXPECTED_STATUS STDERR_REGEX COMMAND...
#   EXPECTED_STATUS may be a list such as "0|2".
#   STDERR_REGEX ('' for none) must match the command's stderr.
case_() {
    local name=$1 want=$2 pattern=$3
    shift 3
    local err="$WORK/$name.err"
    (ulimit -v "$LIMIT_KB"; timeout -s KILL "$TIMEOUT" "$@") > "$WORK/$name.out" 2> "$err"
    local got=$?
    local why=""
    if ! [[ "|$want|" == *"|$got|"* ]]; then why="exit status $got, want $want"; fi
    if ((got > 128)); then why="killed by signal $((got - 128)) (timeout or crash)"; fi
    if grep -q "internal error" "$err"; then why="${why:+$why; }'internal error' on stderr"; fi
    if LC_ALL=C grep -q $'[\x01-\x08\x0b-\x1f\x7f]' "$err"; then why="${why:+$why; }a raw control byte on stderr"; fi
    if [[ "$got" == 2 && ! -s "$err" ]]; then why="${why:+$why; }exit 2 without a message"; fi
    if [[ -n "$pattern" ]] && ! grep -Eq -- "$pattern" "$err"; then
        why="${why:+$why; }stderr does not match /$pattern/"
    fi
    if (($(wc -c < "$err") > 65536)); then why="${why:+$why; }more than 64 KiB of messages"; fi
    if [[ -z "$why" ]]; then
        passed=$((passed + 1))
        echo "ok   $name"
    else
        failed=$((failed + 1))
        echo "FAIL $name: $why"
        head -c 600 "$err" | sed 's/^/     | /'
    fi
}

py() { python3 -c "$@"; }

# --- inputs ---------------------------------------------------------------
VALID="$SRC/examples/valid-vmcb.json"
py 'import sys; d=100000; sys.stdout.write("{\"control\": {\"asid\": " + "["*d + "]"*d + "}}")' > deep.json
py 'import sys; d=100000; sys.stdout.write("{\"name\": \"x\", \"features\": " + "["*d + "]"*d + "}")' > deep-cpu.json
py 'import sys; d=100000; sys.stdout.write("{\"id\": \"deep\", \"vmcb\": " + "["*d + "]"*d + "}\n")' > deep-vector.jsonl
py 'import sys; sys.stdout.write("{\"control\": {\"" + "x"*10_000_000 + "\": 1}}")' > long-name.json
py 'import sys; sys.stdout.write("{\"name\": \"" + "y"*10_000_000 + "\", \"base\": \"nosuch" + "z"*1_000_000 + "\"}")' > long-cpu.json
printf '{"control": {"\033[2J\033[31mforged\nline": 1}}' > ctrl-name.json
printf '{"save": {"cr0": 1e999}}' > huge-number.json
printf '{"name": "a", "maxphyaddr": 48, "maxphyaddr": 40}' > dup-cpu.json
printf '{"id": "a", "id": "b", "vmcb": {}}\n' > dup-vector.jsonl
: > empty.jsonl
{ printf '// a JSON VMCB with a comment first\n'; cat "$VALID"; } > comment-first.json
# 20 MB of KVM-dump-like lines with labels nsvm does not know.
py '
import sys
w = sys.stdout.write
w("kvm_amd: VMCB Control Area:\n")
for i in range(400000):
    w("kvm_amd: unknown_label_%d:   %016x\n" % (i, i))
' > many-labels.txt

cat > alias-bomb.yaml <<'EOF'
name: alias-bomb
memory:
  - gpa: 0x20000
    vmcb:
      control:
        a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]
        b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
        c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
        d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
        e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
        f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
        g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]
        h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]
        i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h, *h]
l1: {rax: 0x20000}
steps:
  - l1: vmrun
EOF
{
    echo "name: huge-memory"
    echo "memory:"
    for i in $(seq 0 15); do printf '  - {gpa: %#x, size: 0x200000000}\n' $((i * 0x200000000)); done
    echo "l1: {rax: 0x20000}"
    echo "steps:"
    echo "  - {l1: stgi, expect: {gif: true}}"
} > huge-memory.yaml
cat > dup-key.yaml <<'EOF'
name: dup
name: dup-again
l1: {rax: 0x20000}
steps:
  - l1: stgi
EOF
cat > devzero.yaml <<'EOF'
name: devzero
memory:
  - {gpa: 0x20000, vmcb: /dev/zero}
l1: {rax: 0x20000}
steps:
  - l1: vmrun
EOF
cp deep.json "$WORK/deep-vmcb.json"
cat > deep-vmcb.yaml <<'EOF'
name: deep
memory:
  - {gpa: 0x20000, vmcb: deep-vmcb.json}
l1: {rax: 0x20000}
steps:
  - l1: vmrun
EOF
py 'import sys; d=100000; sys.stdout.write("name: deep\nl1: " + "["*d + "]"*d + "\nsteps: []\n")' > deep-flow.yaml

# A 60 MiB log of tiny fake KVM dumps (a million of them), and 60 MiB of an
# xxd dump that never ends, and one 60 MiB line of bytes.
py 'import sys; sys.stdout.write("VMCB Control Area:\nasid: 1\nVMCB State Save Area:\n" * 1_000_000)' > many-dumps.txt
py 'import sys; sys.stdout.write("".join("%08x: 0000 0000 0000 0000 0000 0000 0000 0000  ................\n" % (16 * i) for i in range(900_000)))' > endless-xxd.txt
py 'import sys; sys.stdout.write("00000000:" + " 00" * 20_000_000)' > wide-xxd.txt
# --- cases ------------------------------------------------------------------
# Deep nesting: never a stack overflow, in any command that reads a VMCB.
case_ deep_json_check 2 'deep.json' "$NSVM" check deep.json
case_ deep_json_decode 2 'deep.json' "$NSVM" decode deep.json
case_ deep_json_convert 2 'deep.json' "$NSVM" convert --to raw -o "$WORK/out.raw" deep.json
case_ deep_json_cpu 2 'deep-cpu.json' "$NSVM" check --cpu deep-cpu.json "$VALID"
case_ deep_json_scenario_vmcb 2 'deep' "$NSVM" run deep-vmcb.yaml
case_ deep_yaml_scenario 2 'deep-flow.yaml' "$NSVM" run deep-flow.yaml
case_ deep_json_oracle_run 2 'deep-vector.jsonl' "$NSVM" oracle run --backend qemu deep-vector.jsonl
case_ deep_json_diff 2 'deep-vector.jsonl' "$NSVM" diff --backend qemu deep-vector.jsonl

# Memory: small files that expand, huge or endless inputs.
case_ yaml_alias_bomb 2 'alias-bomb.yaml' "$NSVM" run alias-bomb.yaml
case_ scenario_huge_memory '0|1|2' '' "$NSVM" run huge-memory.yaml
case_ devzero_vmcb 2 '/dev/zero' "$NSVM" check /dev/zero
case_ devzero_stdin 2 'stdin|standard input|-' bash -c "\"$NSVM\" check - < /dev/zero"
case_ devzero_cpu 2 '/dev/zero' "$NSVM" check --cpu /dev/zero "$VALID"
case_ devzero_scenario_vmcb 2 '/dev/zero' "$NSVM" run devzero.yaml
case_ kvm_dump_many_labels 2 'many-labels.txt' "$NSVM" check many-labels.txt
case_ kvm_many_dumps 2 'many-dumps.txt.*at most 1024 at once' "$NSVM" check many-dumps.txt
case_ kvm_many_dumps_pick_last 1 "" "$NSVM" check --dump 1000000 --json many-dumps.txt
case_ hexdump_endless 2 'endless-xxd.txt:257' "$NSVM" check endless-xxd.txt
case_ hexdump_wide_line 2 'wide-xxd.txt.*more than 256 bytes' "$NSVM" check --format hexdump wide-xxd.txt
# 260,000 vectors held in memory would pass 2 GiB: streamed, they need little.
# Generating them takes about 20 s of CPU, so this case has a longer timeout.
TIMEOUT=120 case_ gen_streams 0 '' "$NSVM" gen --seed 1 --count 260000 --no-boundary -o /dev/null

# Time: "did you mean" on enormous names.
case_ long_member_name 2 'long-name.json' "$NSVM" check long-name.json
case_ long_cpu_model_names 2 'long-cpu.json' "$NSVM" check --cpu long-cpu.json "$VALID"

# Messages: duplicates, control characters, values out of range.
case_ dup_key_scenario 2 'dup-key.yaml.*(line|:[0-9]+).*name' "$NSVM" run dup-key.yaml
case_ dup_key_vector 2 'dup-vector.jsonl.*id' "$NSVM" oracle run --backend qemu dup-vector.jsonl
case_ dup_key_cpu 2 'dup-cpu.json.*maxphyaddr' "$NSVM" check --cpu dup-cpu.json "$VALID"
case_ control_chars_escaped 2 'ctrl-name.json' "$NSVM" check ctrl-name.json
case_ number_beyond_double 2 'cr0' "$NSVM" check huge-number.json
case_ directory_input 2 'director' "$NSVM" check "$WORK"
case_ comment_first_json '0|2' '' "$NSVM" check comment-first.json
case_ negative_seed 2 'seed' "$NSVM" gen --seed -1 --count 5 -o "$WORK/g.jsonl"
case_ overflowing_count 2 'count' "$NSVM" gen --seed 1 --count 99999999999999999999 -o "$WORK/g.jsonl"

# Exit codes: setup failures are 2, nothing compared is not success,
# a write error on stdout is an error.
case_ unknown_emulator_cpu 2 'cpu-model|nosuch' "$NSVM" oracle run --backend bochs --cpu-model nosuch "$SRC/tests/hostile/one-vector.jsonl"
case_ diff_empty_file 2 'empty.jsonl|no vector' "$NSVM" diff --backend qemu empty.jsonl
case_ stdout_write_error 2 'standard output|stdout' bash -c "\"$NSVM\" check \"$VALID\" > /dev/full"

echo "$passed passed, $failed failed"
((failed == 0))
