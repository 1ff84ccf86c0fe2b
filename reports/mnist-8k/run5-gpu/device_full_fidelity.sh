#!/bin/bash
# Device call (session 6): full-fidelity mnist-8k and mnist-6k searches with the new recipe, several
# workers per study on one journal file each; stop proposing at $STOP min, kill everything at $DEADLINE s.
DEADLINE=${DEADLINE:-470}; STOP=${STOP:-5.6}; EP=${EP:-15}; SUB=${SUB:-0}; W8=${W8:-4}; W6=${W6:-3}
R=${R:-/root/runs}; mkdir -p $R
if [ -n "$OUT_IS_DEVICE" ]; then
  mkdir -p /root/data && cp .dev/p1/mnist.npz /root/data/
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /root/site .whl/*.whl || exit 1
  export PYTHONPATH=/root/site:$PWD KERAS_BACKEND=jax BUDGETNAS_DATA_DIR=/root/data XLA_PYTHON_CLIENT_PREALLOCATE=false
  nvidia-smi -L; nproc
fi
export PYTHONUNBUFFERED=1
B="python3 -m search"; B6="python3 -m search --budgets reports/mnist-8k/run5-gpu/budgets-6k.toml"
SECONDS=0
common="--max-epochs $EP --train-subset $SUB --trials 200 --timeout $STOP --no-retrain --reports-dir $R"
timeout $DEADLINE $B search --budget mnist-8k --name m8 --seed 5 --storage journal:$R/m8.journal $common > $R/m8-0.log 2>&1 &
timeout $DEADLINE $B6 search --budget mnist-6k --name m6 --seed 6 --storage journal:$R/m6.journal $common > $R/m6-0.log 2>&1 &
sleep 25
for i in $(seq 1 $((W8-1))); do timeout $((DEADLINE-25)) $B worker m8 --storage journal:$R/m8.journal --reports-dir $R > $R/m8-$i.log 2>&1 & done
for i in $(seq 1 $((W6-1))); do timeout $((DEADLINE-25)) $B worker m6 --storage journal:$R/m6.journal --reports-dir $R > $R/m6-$i.log 2>&1 & done
while [ $(jobs -r | wc -l) -gt 0 ]; do sleep 30; echo "t=${SECONDS}s"; tail -qn1 $R/*.log | cut -c1-160; done
wait
echo "jobs done at ${SECONDS}s"
for n in m8 m6; do $B leaderboard $n --reports-dir $R --storage journal:$R/$n.journal --top 12 2>&1 | tail -30; done
if [ -n "$OUT" ]; then tar czf $OUT/runs.tgz -C $R . ; ls -la $OUT; fi
