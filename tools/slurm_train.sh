#!/usr/bin/env bash
# Usage: [GPUS=8] [GPUS_PER_NODE=8] tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [args]
exec bash "$(dirname "$0")/launch.sh" slurm "$1" "$2" train.py "$3" --work-dir="$4" \
    --launcher slurm "${@:5}"
