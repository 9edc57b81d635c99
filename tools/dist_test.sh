#!/usr/bin/env bash
# Distributed evaluation with torchrun: tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCS [test.py args]
set -euo pipefail
CONFIG=$1
CHECKPOINT=$2
NPROCS=$3
shift 3
PYTHON=${PYTHON:-python}
exec "$PYTHON" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${PORT:-29500}" \
    --nproc_per_node="$NPROCS" \
    "$(dirname "$0")/test.py" "$CONFIG" "$CHECKPOINT" --launcher pytorch "$@"
