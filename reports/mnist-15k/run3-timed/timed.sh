#!/bin/bash
# Session 7: the complete mnist-15k run on the 2-core CPU, alone on the machine, timed.
# search: 20 trials at the budget's fidelity, 2 processes (search + 1 worker, one TF thread each) on one Optuna journal file;
# then retrain of the best trial by validation, 3 seeds x 15 epochs (one process, both cores).
set -u
cd /work/main
export BUDGETNAS_DATA_DIR=/work/shared/datasets PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/run-snap8
B="/work/main/.venv/bin/python -m search"; N=mnist-15k-timed; R=/work/main/reports; L=$R/$N.timed.log
ST="journal:$R/$N.journal"
echo "start $(date -u +%T)" >> $L; SECONDS=0
TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 $B search --budget mnist-15k --name $N --seed 0 --trials 20 \
    --storage $ST --no-retrain --reports-dir $R > $R/$N.search-0.log 2>&1 &
sleep 20
TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 $B worker $N --storage $ST --reports-dir $R > $R/$N.search-1.log 2>&1 &
wait
echo "search done $(date -u +%T) after ${SECONDS}s" >> $L; S1=$SECONDS
$B retrain $N --top 1 --seeds 3 --reports-dir $R > $R/$N.retrain.log 2>&1
echo "retrain done $(date -u +%T) after $((SECONDS-S1))s; total ${SECONDS}s" >> $L
