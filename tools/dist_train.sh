#!/usr/bin/env bash
# Distributed training with torchrun: tools/dist_train.sh CONFIG NUM_PROCS [train.py args]
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR and PORT.
set -euo pipefail
CONFIG=$1
NPROCS=$2
shift 2
PYTHON=${PYTHON:-python}
exec "$PYTHON" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${PORT:-29500}" \
    --nproc_per_node="$NPROCS" \
    "$(dirname "$0")/train.py" "$CONFIG" --launcher pytorch "$@"
