#!/bin/bash
# Device call 1 (session 7): a full-fidelity mnist-15k search (15 epochs on all 55k images, rungs 1/3/9)
# for the "≥ 99.5% in ≤ 15 epochs" aim; W processes on one journal; stop proposing at $STOP min, kill all at $DEADLINE s.
DEADLINE=${DEADLINE:-330}; STOP=${STOP:-3.0}; W=${W:-6}; R=${R:-$PWD/.dev/p5/runs}; mkdir -p $R
if [ -n "$OUT_IS_DEVICE" ]; then
  mkdir -p /root/data && cp .dev/p1/mnist.npz /root/data/
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /root/site .whl/*.whl || exit 1
  export PYTHONPATH=/root/site:$PWD KERAS_BACKEND=jax BUDGETNAS_DATA_DIR=/root/data XLA_PYTHON_CLIENT_PREALLOCATE=false
fi
export PYTHONUNBUFFERED=1
B="python3 -m search"; SECONDS=0
timeout $DEADLINE $B search --budget mnist-15k --name m15 --seed 8 --storage journal:$R/m15.journal --max-epochs 15 --train-subset 0 --trials 200 --timeout $STOP --no-retrain --reports-dir $R > $R/m15-0.log 2>&1 &
sleep 15
for i in $(seq 1 $((W-1))); do timeout $((DEADLINE-15)) $B worker m15 --storage journal:$R/m15.journal --reports-dir $R > $R/m15-$i.log 2>&1 & done
while [ $(jobs -r | wc -l) -gt 0 ]; do sleep 30; echo "t=${SECONDS}s $(cat $R/m15-*.log | grep -c 'complete:\|pruned (')"; done
wait; echo "jobs done at ${SECONDS}s"
$B leaderboard m15 --reports-dir $R --storage journal:$R/m15.journal --top 10 2>&1 | tail -16
if [ -n "$OUT" ]; then tar czf $OUT/runs.tgz -C $R . ; fi
