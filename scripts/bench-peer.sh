#!/usr/bin/env bash
# Whole-model throughput of qpipe next to ONNX Runtime (onnxruntime-node), in
# one run and one table: runs bench/peer/ort_bench.mjs, which times ORT and
# then `qpipe bench --json`. Optional: without node or onnxruntime-node it
# prints how to install them and exits 0.
# Usage: scripts/bench-peer.sh [ort_bench.mjs options...]
#   QPIPE_BIN   the qpipe binary (default: build/qpipe)
#   NODE_PATH   where onnxruntime-node is installed (its node_modules folder)
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v node >/dev/null 2>&1; then
  echo "bench-peer: node is not installed; install Node.js, then" \
       "\`ONNXRUNTIME_NODE_INSTALL=skip npm install onnxruntime-node\` and set NODE_PATH to its node_modules folder"
  exit 0
fi
exec node bench/peer/ort_bench.mjs --qpipe "${QPIPE_BIN:-build/qpipe}" "$@"
