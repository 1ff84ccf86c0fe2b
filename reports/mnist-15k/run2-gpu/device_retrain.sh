#!/bin/bash
# Device call 2 (session 7): retrain the m15 search's best trial (by validation) with 3 seeds, 15 epochs; test once per seed.
R=${R:-$PWD/.dev/p5/runs}
if [ -n "$OUT_IS_DEVICE" ]; then
  mkdir -p /root/data && cp .dev/p1/mnist.npz /root/data/
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /root/site .whl/*.whl || exit 1
  export PYTHONPATH=/root/site:$PWD KERAS_BACKEND=jax BUDGETNAS_DATA_DIR=/root/data XLA_PYTHON_CLIENT_PREALLOCATE=false
fi
export PYTHONUNBUFFERED=1; SECONDS=0
python3 -m search retrain m15 --reports-dir $R --top 1 --seeds 3 --resume 2>&1 | tee $R/m15-retrain.log | grep -v "epoch"
echo "retrain done at ${SECONDS}s"
if [ -n "$OUT" ]; then tar czf $OUT/runs.tgz -C $R . ; fi
