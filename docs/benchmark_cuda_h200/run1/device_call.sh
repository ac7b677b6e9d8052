#!/usr/bin/env bash
# One device call: GPU correctness of the graphed decoder, the CUDA benchmark, a short real training run.
START=$(date +%s); DEADLINE=$((START + 575))
left() { echo $((DEADLINE - $(date +%s) - $1)); }
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl 2>&1 | tail -2
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee $OUT/gpu.txt
python3 -c "import torch; print(torch.__version__, torch.version.cuda)" | tee -a $OUT/gpu.txt
echo "== install done at +$(( $(date +%s) - START )) s"
timeout 100 python3 -m pytest -q -p no:cacheprovider tests/test_model.py 2>&1 | tail -15 | tee $OUT/pytest.txt
echo "== pytest done at +$(( $(date +%s) - START )) s"
timeout $(left 360) python3 tools/benchmark.py --device cuda --sections decode --num-objects 10 100 --warmup 2 --repeats 5 \
  --json $OUT/bench_decode.json --plot $OUT/decode_cuda.png > $OUT/bench_decode.txt 2>&1; tail -12 $OUT/bench_decode.txt
echo "== decode bench done at +$(( $(date +%s) - START )) s"
timeout $(left 270) python3 tools/benchmark.py --device cuda --sections infer train --warmup 2 --repeats 5 \
  --json $OUT/bench_model.json > $OUT/bench_model.txt 2>&1; tail -16 $OUT/bench_model.txt
echo "== model bench done at +$(( $(date +%s) - START )) s"
python3 tools/generate_synthetic.py --preset easy --out-dir data/synthetic > /dev/null 2>&1
T0=$(date +%s)
timeout $(left 60) python3 tools/train.py configs/pix2seq_r18-tiny_1xb16-34e_synthetic.py --work-dir /tmp/wd \
  --cfg-options train_dataloader.num_workers=10 train_dataloader.persistent_workers=True > /tmp/train.out 2>&1
echo "== train rc $? in $(( $(date +%s) - T0 )) s at +$(( $(date +%s) - START )) s"
cp /tmp/wd/*/*.log $OUT/train.log 2>/dev/null; grep -E "bbox_mAP:|Error" /tmp/train.out | tail -8
if [ -f /tmp/wd/last_checkpoint ]; then
  timeout $(left 30) python3 tools/test.py configs/pix2seq_r18-tiny_1xb16-34e_synthetic.py "$(cat /tmp/wd/last_checkpoint)" \
    --work-dir /tmp/wd/test > $OUT/test.txt 2>&1; grep -E "bbox_mAP|Error" $OUT/test.txt | tail -3
fi
echo "== test done at +$(( $(date +%s) - START )) s"
timeout $(left 5) python3 tools/benchmark.py --device cuda --amp --sections infer --sizes 640 \
  --warmup 2 --repeats 5 --json $OUT/bench_amp.json > $OUT/bench_amp.txt 2>&1; tail -14 $OUT/bench_amp.txt
echo "== all done at +$(( $(date +%s) - START )) s"
