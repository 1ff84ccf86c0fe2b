#!/bin/bash
# Device call 2 (session 6): the budget's own low-fidelity mnist-8k search (3 epochs on 20k, rungs 1 and 3)
# with the giving-back repair, W workers on one journal; stop proposing at $STOP min, kill all at $DEADLINE s.
DEADLINE=${DEADLINE:-200}; STOP=${STOP:-2.5}; W=${W:-5}; R=${R:-/root/runs}; mkdir -p $R
if [ -n "$OUT_IS_DEVICE" ]; then
  mkdir -p /root/data && cp .dev/p1/mnist.npz /root/data/
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /root/site .whl/*.whl || exit 1
  export PYTHONPATH=/root/site:$PWD KERAS_BACKEND=jax BUDGETNAS_DATA_DIR=/root/data XLA_PYTHON_CLIENT_PREALLOCATE=false
fi
export PYTHONUNBUFFERED=1
B="python3 -m search"; SECONDS=0
timeout $DEADLINE $B search --budget mnist-8k --name m8r --seed 7 --storage journal:$R/m8r.journal --trials 200 --timeout $STOP --no-retrain --reports-dir $R > $R/m8r-0.log 2>&1 &
sleep 15
for i in $(seq 1 $((W-1))); do timeout $((DEADLINE-15)) $B worker m8r --storage journal:$R/m8r.journal --reports-dir $R > $R/m8r-$i.log 2>&1 & done
while [ $(jobs -r | wc -l) -gt 0 ]; do sleep 20; echo "t=${SECONDS}s $(cat $R/m8r-*.log | grep -c 'complete:\|pruned (')"; done
wait; echo "jobs done at ${SECONDS}s"
$B leaderboard m8r --reports-dir $R --storage journal:$R/m8r.journal --top 10 2>&1 | tail -16
if [ -n "$OUT" ]; then tar czf $OUT/runs.tgz -C $R . ; fi
