#!/usr/bin/env bash
# Usage: [GPUS=8] [GPUS_PER_NODE=8] [SIGNAL=TERM@120] tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [args]
# --signal: Slurm sends SIGNAL (default SIGTERM) 120 s before the time limit (a preemption
# sends SIGTERM by itself, GraceTime before SIGKILL); train.py then finishes the iteration,
# saves a checkpoint and exits 143 (128 + SIGTERM). Rerun with --resume to continue.
SRUN_ARGS="--signal=${SIGNAL:-TERM@120} ${SRUN_ARGS:-}" \
exec bash "$(dirname "$0")/launch.sh" slurm "$1" "$2" train.py "$3" --work-dir="$4" \
    --launcher slurm "${@:5}"
