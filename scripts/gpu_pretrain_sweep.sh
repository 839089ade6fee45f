#!/usr/bin/env bash
# The pretraining recipe sweep of 2026-12-04 (docs/pretraining.md, "Recipe sweep on a GPU"),
# run on a lent GPU machine with this machine's patch store carried in .gpu/ (patches.npz,
# index.parquet, dataset.json: `np.savez_compressed` of data/patches/store/patches.npy).
# Every run is fp32 without channels_last, so that it trains as the CPU default does;
# all run at once (one thread each). Results: $OUT/sweep.tgz (tables, metrics, probes).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-sweep_out}
mkdir -p "$OUT" data/patches/store data/degraded
python3 -c "import numpy as np; np.save('data/patches/store/patches.npy', np.load('.gpu/patches.npz')['a'])"
cp .gpu/index.parquet data/patches/store/ && cp .gpu/dataset.json data/degraded/
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 TQDM_DISABLE=1
COMMON="pretrain.precision=fp32;pretrain.channels_last=false"
V=scripts/pretrain_variants.py
# A: what learns within the 5-minute CPU budget (200 steps of 4 x 12 at 64 px ~ 1.4 s/step)
( sleep "${DEADLINE:-220}"; pkill -f stages.pretrain ) &   # what is left then is reported as failed
python3 $V --out sweep/a --parallel 6 --set "$COMMON" \
  default nospl:spl.enabled=false hardfirst:spl.order=hard_first \
  in48_300:pretrain.input_size=48\;pretrain.epochs=15 \
  pp8_300:pretrain.per_pool=8\;pretrain.epochs=15 steps400:pretrain.epochs=20 \
  > "$OUT/a.log" 2>&1 &
# B: the benchmark's 1,000-step pretraining on the current store, three methods
B="pretrain.epochs=50;pretrain.probe_every=10;pretrain.ckpt_every=10"
python3 $V --out sweep/b --parallel 3 --set "$COMMON;$B" \
  comcl nospl:spl.enabled=false simclr:pretrain.method=simclr > "$OUT/b.log" 2>&1 &

wait %2; tar czf "$OUT/sweep_a.tgz" --exclude='*.pt' sweep/a
wait %3
[ -f sweep/b/comcl/encoder.pt ] && [ -f sweep/b/simclr/encoder.pt ] &&
OMP_NUM_THREADS=16 python3 -m comcl.experiments.encoder_compare --params sweep/b/comcl/params.yaml \
  --encoder comcl=sweep/b/comcl/encoder.pt --encoder nospl=sweep/b/nospl/encoder.pt \
  --encoder simclr=sweep/b/simclr/encoder.pt --encoder random=none \
  --out sweep/b/encoder_compare.json > "$OUT/compare.log" 2>&1
tar czf "$OUT/sweep_b.tgz" --exclude='*.pt' sweep/b
cat sweep/a/table.md sweep/b/table.md "$OUT/compare.log"
