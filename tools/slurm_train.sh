#!/usr/bin/env bash
# Usage: [GPUS=8] [GPUS_PER_NODE=8] [SIGNAL=TERM@120] tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [args]
# --signal: Slurm sends SIGNAL (default SIGTERM) 120 s before the time limit (a preemption
# sends SIGTERM by itself, GraceTime before SIGKILL); train.py then finishes the iteration,
# saves a checkpoint and exits 143 (128 + SIGTERM). Rerun with --resume to continue.
set -x
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
SIGNAL=${SIGNAL:-TERM@120}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python}

PYTHONPATH="$ROOT":$PYTHONPATH \
srun -p "$PARTITION" --job-name="$JOB_NAME" --gres=gpu:"$GPUS_PER_NODE" --ntasks="$GPUS" \
    --ntasks-per-node="$GPUS_PER_NODE" --cpus-per-task="$CPUS_PER_TASK" --kill-on-bad-exit=1 \
    --signal="$SIGNAL" \
    $SRUN_ARGS "$PY" -u "$ROOT/tools/train.py" "$CONFIG" --work-dir="$WORK_DIR" \
    --launcher slurm "${@:5}"
