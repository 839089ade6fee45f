#!/usr/bin/env bash
# CUDA check, one prepared run on a GPU machine (docs/benchmark.md, "On a GPU"):
#  1. the paper-scale pretraining step (ResNet-50, 128 px, batch 400, bf16 + channels_last,
#     then fp32) with real loading vs device-resident tensors: benchmarks/pretrain.py;
#  2. the whole default pipeline, stage by stage, on CUDA with the stage commands (no dvc
#     needed), each stage timed; its metrics are copied to $OUT (or ./cuda_out).
# Needs python3 with torch/torchvision (CUDA), pandas, pyarrow, opencv, scikit-learn, click,
# tqdm, matplotlib, torchmetrics + pycocotools, PyYAML. dvclive is not needed (--live-dir '').
# Usage: bash benchmarks/cuda_check.sh [params.yaml]
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-cuda_out}
mkdir -p "$OUT"
PARAMS=${1:-params.yaml}
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1
PY=${PYTHON:-python3}
log() { echo "== $*" | tee -a "$OUT/summary.txt"; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee -a "$OUT/summary.txt"
$PY -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision',
torchvision.__version__, 'cuda', torch.cuda.is_available(), 'cpus', torch.get_num_threads())" \
  | tee -a "$OUT/summary.txt"

log "1. paper-scale pretraining step"
[ -z "${FROM_PATCHES:-}" ] && $PY benchmarks/pretrain.py --steps 10 2>&1 | tee -a "$OUT/summary.txt"
[ -z "${FROM_PATCHES:-}" ] && $PY benchmarks/pretrain.py --steps 10 --precision fp32 2>&1 | tail -4 | tee -a "$OUT/summary.txt"

log "2. the default pipeline on CUDA ($PARAMS)"
stage() {
  local name=$1; shift
  local t0=$(date +%s%N)
  local p=()
  $PY -m stages."$name" --help | grep -q -- --params && p=(--params "$PARAMS")
  timeout 400 $PY -m stages."$name" "${p[@]}" "$@" > "$OUT/stage_$name.log" 2>&1
  local rc=$?
  local t1=$(date +%s%N)
  printf '%-15s rc=%s %7d ms  %s\n' "$name" "$rc" "$(( (t1 - t0) / 1000000 ))" \
    "$(tail -1 "$OUT/stage_$name.log" | cut -c1-160)" | tee -a "$OUT/summary.txt"
  return $rc
}
if [ -n "${FROM_PATCHES:-}" ]; then   # data, detector and windows already made: from build_patches on
  stage build_patches && stage pretrain --live-dir '' && stage finetune --live-dir '' &&
    stage linear_probe && stage evaluate --live-dir ''
else
stage prepare && stage degrade && stage split &&
  stage train_detector --live-dir '' && stage detect && stage crop_healthy &&
  stage build_patches && stage pretrain --live-dir '' && stage finetune --live-dir '' &&
  stage linear_probe && stage evaluate --live-dir ''
fi
for f in detector detect pretrain finetune linear_probe eval; do
  [ -f "metrics/$f.json" ] && cp "metrics/$f.json" "$OUT/cuda_$f.json"
done
tar czf "$OUT/stage_logs.tgz" "$OUT"/stage_*.log 2>/dev/null && rm -f "$OUT"/stage_*.log
log "done"
