#!/usr/bin/env bash
# The README's main job: install (idempotent), generate the synthetic dataset if missing, train the small synthetic
# config, evaluate it with mmdet's CocoMetric and print COCO bbox mAP.
#   PRESET=easy|hard|varied (default easy)   WORK_DIR (default work_dirs/synthetic-$PRESET)   extra args go to train.py
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PRESET="${PRESET:-easy}"
case "$PRESET" in
  easy) CONFIG=configs/pix2seq_r18-tiny_1xb16_30e_synthetic-112.py; DATA=data/synthetic ;;
  hard) CONFIG=configs/pix2seq_r18-tiny-s8_1xb16_34e_synthetic-hard.py; DATA=data/synthetic_hard ;;
  varied) CONFIG=configs/pix2seq_r18-tiny_1xb16_34e_synthetic-varied.py; DATA=data/synthetic_varied ;;
  *) echo "run_synthetic.sh: PRESET must be easy, hard or varied, got '$PRESET'" >&2; exit 2 ;;
esac
WORK_DIR="${WORK_DIR:-work_dirs/synthetic-$PRESET}"
PY=.venv/bin/python
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"

bash tools/install.sh
$PY tools/generate_synthetic.py --preset "$PRESET" --out-dir "$DATA"
start=$(date +%s)
$PY tools/train.py "$CONFIG" --work-dir "$WORK_DIR" "$@"
trained=$(date +%s)
CKPT="$(cat "$WORK_DIR/last_checkpoint")"
$PY tools/test.py "$CONFIG" "$CKPT" --work-dir "$WORK_DIR/test" | tee "$WORK_DIR/test.log"
tested=$(date +%s)
$PY tools/analysis_tools/plot_curve.py "$WORK_DIR" --out "$WORK_DIR/curve.png" --title "Pix2Seq synthetic ($PRESET)"
echo "== preset $PRESET: train $((trained - start)) s, test $((tested - trained)) s; checkpoint $CKPT"
grep -E "coco/bbox_mAP" "$WORK_DIR/test.log" | tail -n 1 | sed 's/.*\(coco\/bbox_mAP: [0-9.]*\).*\(coco\/bbox_mAP_50: [0-9.]*\).*/== \1  \2/'
