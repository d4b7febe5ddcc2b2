#!/usr/bin/env bash
# Installs everything (Python dependencies into .venv; Fashion-MNIST from
# Debian's dataset-fashion-mnist package when absent) and runs the whole
# pipeline on the default config. Extra arguments go to pipeline.run.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
bash scripts/install_data.sh
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[cpu,serving]"
# The gRPC API's protos, without their declared dependency on the full `tensorflow` wheel
# (it would land beside tensorflow-cpu); the server then answers gRPC as well as REST.
.venv/bin/python -m pip install --quiet --no-deps tensorflow-serving-api==2.21.0
exec .venv/bin/python -m pipeline.run --config=configs/fashion_mnist.py --workdir="${WORKDIR:-runs/fmnist}" "$@"
