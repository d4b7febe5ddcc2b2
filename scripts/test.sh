#!/usr/bin/env bash
# Installs the package with its test dependencies into .venv (and Fashion-MNIST, which
# the default config points at) and runs the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_data.sh
# The playground's browser tests drive Debian's Chromium through its chromedriver (selenium).
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver
fi
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[cpu,serving,gcs,test]"
# The gRPC API's protos and stubs, without their declared dependency on the full `tensorflow`
# wheel (which would land beside tensorflow-cpu); tests/gan_keras/serving/test_grpc_serving.py checks it did not.
.venv/bin/python -m pip install --quiet --no-deps tensorflow-serving-api==2.21.0
# invisible-watermark (benchmarks/watermark_survival.py) without its declared torch, onnx and GUI
# OpenCV: its dwt methods need only opencv-python-headless and PyWavelets (the test extra).
.venv/bin/python -m pip install --quiet --no-deps invisible-watermark==0.2.0
.venv/bin/ruff check .
.venv/bin/ruff format --check .
# Two workers, one per core: much of the suite is single-threaded Python (tracing, Beam,
# subprocesses), so two cut its time on 2 cores; a test file stays on one worker, where its
# module fixtures are built once. PYTEST_WORKERS=0 runs it in this process.
# The default leaves out the `heavy` runs (pyproject.toml); a later -m wins: `-m heavy` runs only
# them, `-m ""` everything.
exec .venv/bin/python -m pytest -q --timeout=900 -n "${PYTEST_WORKERS:-2}" --dist loadfile \
  -m "not heavy" tests "$@"
