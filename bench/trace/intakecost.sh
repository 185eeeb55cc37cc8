#!/bin/bash
# Instructions per record of the agent's L7 intake, split on and off (callgrind; no root):
#   [STATES=on] bench/trace/intakecost.sh [WORKTREE]
# (Ir of 4 feeds - Ir of 2 feeds) / the records the 2 more feeds add, per state. A ring of
# 4,096 flows is full after the first feed (5,120 records), as the agent's is in steady
# state: its garbage collections then cost what they cost there, per flow kept.
set -e
cd "${1:-$(dirname "$0")/../..}"
PY=${PY:-/work/main/.venv/bin/python}
export PYTHONHASHSEED=0  # dict and set layouts vary with the seed: ±1-2 k instructions
BATCHES=20
out=$(mktemp -d)
for s in ${STATES:-on off}; do
  for r in 2 4; do
    PYTHONPATH=$PWD valgrind --tool=callgrind --callgrind-out-file="$out/$s.$r.out" "$PY" \
      -m bench.trace.intakecost --only $s --batches $BATCHES --repeat $r --ring 4096 2>&1 \
      | grep -o "refs:.*" | tr -d ', refs:' > "$out/$s.$r"
  done
  echo "split $s: $(( ($(cat "$out/$s.4") - $(cat "$out/$s.2")) / (2 * BATCHES * 256) )) instructions/record"
done
echo "callgrind files: $out"
