"""TFX-style pipeline stages (ingest, train, evaluate, export) and their runner."""

import gan_keras  # noqa: F401  (chooses TensorFlow's CPU kernels before TensorFlow loads)
