#!/usr/bin/env bash
# Installs Fashion-MNIST from Debian's dataset-fashion-mnist package when it is absent
# (the demo trains on it; tests validate the default config, which points at it).
set -euo pipefail
DATA=/usr/share/datasets/fashion-mnist
if [ ! -f "$DATA/train-images-idx3-ubyte.gz" ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq dataset-fashion-mnist
fi
