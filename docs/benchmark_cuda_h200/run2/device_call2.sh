#!/usr/bin/env bash
# Second device call: the compiled decoder against the CUDA graph alone, and compiled inference end to end.
START=$(date +%s); DEADLINE=$((START + 185))
left() { echo $((DEADLINE - $(date +%s) - $1)); }
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl 2>&1 | tail -2
export PYTHONPATH=/tmp/site:$PWD
echo "== install done at +$(( $(date +%s) - START )) s"
timeout $(left 50) python3 tools/benchmark.py --device cuda --sections decode --decoders graphed compiled full \
  --num-objects 100 --batch-sizes 1 8 --warmup 2 --repeats 5 --json $OUT/bench_compiled_decode.json \
  > $OUT/bench_compiled_decode.txt 2>&1; grep -v warn $OUT/bench_compiled_decode.txt | tail -12
echo "== decode bench done at +$(( $(date +%s) - START )) s"
timeout $(left 3) python3 tools/benchmark.py --device cuda --compile --sections infer --sizes 640 --warmup 2 --repeats 5 \
  --json $OUT/bench_infer_compiled.json > $OUT/bench_infer_compiled.txt 2>&1; tail -5 $OUT/bench_infer_compiled.txt
echo "== all done at +$(( $(date +%s) - START )) s"
