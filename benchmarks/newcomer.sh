#!/bin/bash
# What a newcomer gets from `make train` (README "Two commands"): a fresh clone of the committed HEAD, a fresh HOME
# and an empty inductor cache, a minimal environment; prints the venv and training times, the first and last stats
# lines and `fastwgan evaluate`. Usage: benchmarks/newcomer.sh
set -u
d=$(mktemp -d)
git clone -q "$(git -C "$(dirname "$0")" rev-parse --show-toplevel)" "$d/main"
cd "$d/main"
echo "clone $(git rev-parse --short HEAD) in $d"
SECONDS=0
env -i HOME="$d/home" PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 make venv > "$d/venv.log" 2>&1
echo "venv: exit $? after ${SECONDS}s"
SECONDS=0
env -i HOME="$d/home" PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 TORCHINDUCTOR_CACHE_DIR="$d/inductor" make train > "$d/train.log" 2>&1
echo "train (cold compile cache): exit $? after ${SECONDS}s"
tail -3 "$d/train.log"
head -1 "$d/main/runs/digits/stats.jsonl"; tail -1 "$d/main/runs/digits/stats.jsonl"
SECONDS=0
env -i HOME="$d/home" PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 TORCHINDUCTOR_CACHE_DIR="$d/inductor" .venv/bin/fastwgan evaluate runs/digits > "$d/eval.log" 2>&1
echo "evaluate: exit $? after ${SECONDS}s"; cat "$d/eval.log"
