#!/usr/bin/env bash
# Usage: tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py args...]
exec bash "$(dirname "$0")/launch.sh" torchrun "$3" test.py "$1" "$2" --launcher pytorch "${@:4}"
