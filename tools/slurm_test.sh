#!/usr/bin/env bash
# Usage: [GPUS=8] [GPUS_PER_NODE=8] tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [args]
exec bash "$(dirname "$0")/launch.sh" slurm "$1" "$2" test.py "$3" "$4" --launcher slurm "${@:5}"
