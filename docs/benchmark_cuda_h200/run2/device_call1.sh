#!/usr/bin/env bash
# One device call: CUDA-graph and compiled-decoder tests, the CUDA benchmark with compiled decoding, model rows.
START=$(date +%s); DEADLINE=$((START + 570))
left() { echo $((DEADLINE - $(date +%s) - $1)); }
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl 2>&1 | tail -2
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee $OUT/gpu.txt
python3 -c "import torch, triton; print(torch.__version__, torch.version.cuda, 'triton', triton.__version__)" | tee -a $OUT/gpu.txt
echo "== install done at +$(( $(date +%s) - START )) s"
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/test_model.py -k "cuda or compiled" 2>&1 | tail -15 | tee $OUT/pytest.txt
echo "== pytest done at +$(( $(date +%s) - START )) s"
timeout $(left 250) python3 tools/benchmark.py --device cuda --sections decode --num-objects 100 --batch-sizes 1 8 \
  --warmup 2 --repeats 5 --json $OUT/bench_decode.json > $OUT/bench_decode.txt 2>&1; tail -8 $OUT/bench_decode.txt
echo "== decode bench done at +$(( $(date +%s) - START )) s"
timeout $(left 90) python3 tools/benchmark.py --device cuda --sections infer train --warmup 2 --repeats 5 \
  --json $OUT/bench_model.json > $OUT/bench_model.txt 2>&1; tail -14 $OUT/bench_model.txt
echo "== model bench done at +$(( $(date +%s) - START )) s"
timeout $(left 5) python3 tools/benchmark.py --device cuda --compile --sections infer --sizes 640 --warmup 2 --repeats 5 \
  --json $OUT/bench_infer_compiled.json > $OUT/bench_infer_compiled.txt 2>&1; tail -8 $OUT/bench_infer_compiled.txt
echo "== all done at +$(( $(date +%s) - START )) s"
