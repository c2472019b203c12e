#!/bin/sh
# benchmarks/gpu_check.py run from the repository root (a relative --out is taken from there); same options
cd "$(dirname "$0")/.." && PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}" exec "${PYTHON:-python3}" benchmarks/gpu_check.py "$@"
