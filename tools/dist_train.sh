#!/usr/bin/env bash
# Usage: tools/dist_train.sh CONFIG GPUS [train.py args...]
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR, PORT as for torchrun. On CPU, torch uses gloo.
exec bash "$(dirname "$0")/launch.sh" torchrun "$2" train.py "$1" --launcher pytorch "${@:3}"
