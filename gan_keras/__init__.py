"""Keras library for GAN image generation, one package per kind of part:

    data        the record contract and the tf.data input pipeline
    models      networks: DCGAN, StyleGAN2, the pix2pix U-Net and PatchGAN
    training    the GAN models' train_step, losses, augmentation
    tasks       what G is asked to do (generate, super-resolution, inpainting, translation)
    evaluation  feature extractors, feature-space and per-image scores, reference scores
    controls    truncation, interpolation, projection, edits, style mixing
    export      TF Serving's layout, SavedModel signatures, warm-up records
    client      using an exported model: the logic shared by the server and the CLI
    serving     the model server (TF Serving's REST and gRPC APIs)
    storage     the filesystem layer (local, gs://, s3://) and atomic writes

It never imports `pipeline`: the pipeline's stages are built on it.

Importing it also chooses TensorFlow's CPU kernels, so it must come before TensorFlow loads
(`pipeline`, `benchmarks` and the tests import it first): TensorFlow's x86 wheels use oneDNN's
kernels by default only on CPUs with AVX-512 VNNI/BF16 or AMX, and Eigen's elsewhere. On an
AVX2 CPU (this project's 2-core AMD EPYC) Eigen's convolution gradients make a DCGAN training
step about 3x slower (`python -m benchmarks.train_profile`, docs/results.md). A value the
user set, e.g. TF_ENABLE_ONEDNN_OPTS=0, is kept.
"""

import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"
