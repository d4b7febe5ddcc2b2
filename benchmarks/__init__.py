"""Benchmarks: each measures the real code path and reports what it saw (docs/results.md)."""

import gan_keras  # noqa: F401  (chooses TensorFlow's CPU kernels before TensorFlow loads)
