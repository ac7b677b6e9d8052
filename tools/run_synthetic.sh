#!/usr/bin/env bash
# The README's main job: install (idempotent), generate the synthetic dataset if missing, train the small synthetic
# config, evaluate it with mmdet's CocoMetric and print COCO bbox mAP (and segm mAP with TASK=seg, keypoint mAP with
# TASK=keypoints, both with TASK=multitask).
#   PRESET=easy|hard|varied (default easy)   TASK=det|seg|keypoints|multitask (default det; the others: the Pix2Seq
#   v2 tasks, easy preset)   WORK_DIR (default work_dirs/synthetic-$PRESET[-$TASK])   extra args go to train.py
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PRESET="${PRESET:-easy}"
TASK="${TASK:-det}"
case "$TASK" in
  det|seg|keypoints|multitask) ;;
  *) echo "run_synthetic.sh: TASK must be det, seg, keypoints or multitask, got '$TASK'" >&2; exit 2 ;;
esac
case "$PRESET" in
  easy) CONFIG=configs/pix2seq_r18-tiny_1xb16_30e_synthetic-112.py; DATA=data/synthetic ;;
  hard) CONFIG=configs/pix2seq_r18-tiny-s8_1xb4_31e_synthetic-hard.py; DATA=data/synthetic_hard ;;
  varied) CONFIG=configs/pix2seq_r18-tiny_1xb16_34e_synthetic-varied.py; DATA=data/synthetic_varied ;;
  *) echo "run_synthetic.sh: PRESET must be easy, hard or varied, got '$PRESET'" >&2; exit 2 ;;
esac
SUFFIX=""
if [ "$TASK" != det ]; then
  if [ "$PRESET" != easy ]; then
    echo "run_synthetic.sh: TASK=$TASK has a recipe for PRESET=easy only, got '$PRESET'" >&2; exit 2
  fi
  case "$TASK" in
    seg) CONFIG=configs/pix2seq-v2_r18-tiny_box-memory_1xb16_23e_synthetic-112.py ;;
    keypoints) CONFIG=configs/pix2seq-v2-keypoints_r18-tiny_box-memory_1xb16_26e_synthetic-112.py ;;
    multitask) CONFIG=configs/pix2seq-v2-multitask_r18-tiny_1xb16_26e_synthetic-112.py ;;
  esac
  SUFFIX=-$TASK
fi
WORK_DIR="${WORK_DIR:-work_dirs/synthetic-$PRESET$SUFFIX}"
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
if [ "$TASK" = seg ] || [ "$TASK" = multitask ]; then
  grep -E "coco/segm_mAP" "$WORK_DIR/test.log" | tail -n 1 | sed 's/.*\(coco\/segm_mAP: [0-9.]*\).*\(coco\/segm_mAP_50: [0-9.]*\).*/== \1  \2/'
fi
if [ "$TASK" = keypoints ] || [ "$TASK" = multitask ]; then
  grep -E "coco/keypoints_mAP" "$WORK_DIR/test.log" | tail -n 1 | sed 's/.*\(coco\/keypoints_mAP: [0-9.]*\).*\(coco\/keypoints_mAP_50: [0-9.]*\).*/== \1  \2/'
fi
