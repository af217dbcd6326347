#!/usr/bin/env bash
# The shared body of dist_{train,test}.sh and slurm_{train,test}.sh, which keep the argument
# orders OpenMMLab users know and call this; the tool's own arguments follow TOOL.
#   tools/launch.sh torchrun GPUS TOOL [args]   NNODES, NODE_RANK, MASTER_ADDR, PORT as for torchrun
#   tools/launch.sh slurm PARTITION JOB TOOL [args]   GPUS, GPUS_PER_NODE, CPUS_PER_TASK, SRUN_ARGS
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python}
export PYTHONPATH="$ROOT":$PYTHONPATH
case $1 in
torchrun)
    exec "$PY" -m torch.distributed.run \
        --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
        --master_addr="${MASTER_ADDR:-127.0.0.1}" --nproc_per_node="$2" \
        --master_port="${PORT:-29500}" "$ROOT/tools/$3" "${@:4}" ;;
slurm)
    GPUS=${GPUS:-8}
    GPUS_PER_NODE=${GPUS_PER_NODE:-8}
    set -x
    srun -p "$2" --job-name="$3" --gres=gpu:"$GPUS_PER_NODE" --ntasks="$GPUS" \
        --ntasks-per-node="$GPUS_PER_NODE" --cpus-per-task="${CPUS_PER_TASK:-5}" \
        --kill-on-bad-exit=1 ${SRUN_ARGS:-} "$PY" -u "$ROOT/tools/$4" "${@:5}" ;;
*)
    echo "usage: tools/launch.sh torchrun|slurm ... (see its header)" >&2
    exit 2 ;;
esac
