#!/usr/bin/env bash
# One short run on a lent GPU machine: make the population phantoms there (all cores, several
# generator processes at once), fine-tune the bundled model on them with --device cuda, and
# leave the model and its log in $OUT (the device tool brings $OUT back).
# Test it on the CPU first, small:  CASES=2 EPOCHS=1 STEPS=2 DEVICE=cpu OUT=/tmp/gpu-try bash scripts/train_gpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out}; CASES=${CASES:-96}; EPOCHS=${EPOCHS:-40}; STEPS=${STEPS:-300}; DEVICE=${DEVICE:-cuda}
JOBS=${JOBS:-$(nproc)}; DATA=${DATA:-/tmp/thighseg-gpu-data}; INIT=${INIT:-Resources/Models/thighseg-2.5d-phantom.tmsmodel}
PY=${PY:-python3}
mkdir -p "$OUT" "$DATA"
# The machine may have no network: use its torch, install only this project (no dependencies).
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" | tee "$OUT/env.txt"
$PY -m pip install -q --no-deps -e . 2>>"$OUT/env.txt" || true
THIGHSEG="$PY -m ThighMuscleSegLib.cli.main"
per=$(( (CASES + JOBS - 1) / JOBS ))
for j in $(seq 0 $((JOBS - 1))); do  # disjoint seed ranges, none from a held-out region
  OMP_NUM_THREADS=1 $THIGHSEG phantom "$DATA/train_$j" --cases "$per" --seed $((100000 + 1000 * j)) --select train \
    > "$OUT/phantom_$j.log" 2>&1 &
done
wait
start=$(date +%s)
$THIGHSEG train "$DATA"/train_* --out "$OUT/thighseg-2.5d-gpu.tmsmodel" --init "$INIT" --arch 2.5d \
  --epochs "$EPOCHS" --lr 3e-4 --lr-final 2e-5 --steps-per-view "$STEPS" --batch-size 32 --val-fraction 0.1 \
  --seed 11 --device "$DEVICE" --resume 2>&1 | grep -v "batch" | tee "$OUT/train.log"
echo "{\"cases\": $CASES, \"epochs\": $EPOCHS, \"train_seconds\": $(( $(date +%s) - start ))}" | tee "$OUT/summary.json"
