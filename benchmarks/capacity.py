r"""Figures for sizing a cluster: record size and ingest cost per image, and
training images/s per replica, at 64x64 and 256x256 RGB.

Source images are real photographs (scikit-learn's bundled sample images,
427x640), cut into random 375x500 crops and JPEG-encoded, like a typical
photo folder; each goes through the ingest stage's own per-image path
(decode, resize the shorter side, centre-crop, PNG, tf.train.Example).
Training uses the train stage's own GAN (pipeline.train.build.build_gan) at the
default widths (64) on a cached batch.

  python -m benchmarks.capacity [--images=200] [--train_steps=8]
"""

import io
import time

import numpy as np
from absl import app, flags
from PIL import Image

_IMAGES = flags.DEFINE_integer("images", 200, "Source images to ingest per resolution.")
_TRAIN_STEPS = flags.DEFINE_integer("train_steps", 8, "Timed training steps per resolution.")
_SCALES = (1_000_000, 100_000_000)


def _photo_jpegs(n, seed=0):
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        photo = photos[i % len(photos)]
        top = rng.integers(0, photo.shape[0] - 375 + 1)
        left = rng.integers(0, photo.shape[1] - 500 + 1)
        buf = io.BytesIO()
        Image.fromarray(photo[top : top + 375, left : left + 500]).save(
            buf, format="JPEG", quality=90
        )
        out.append(buf.getvalue())
    return out


def measure_ingest(resolution, jpegs):
    from pipeline.ingest import preprocess
    from pipeline.ingest.sources import RawInput

    opts = preprocess.PreprocessOptions(resolution=resolution, channels=3, max_pixels=50_000_000)
    start = time.perf_counter()
    sizes = []
    for i, payload in enumerate(jpegs):
        record = preprocess.preprocess(RawInput(f"img{i}.jpg", "train", -1, payload), opts)
        sizes.append(len(record.example))
    seconds = (time.perf_counter() - start) / len(jpegs)
    return seconds, float(np.mean(sizes))


def measure_training(resolution, steps, batch_size):
    import tensorflow as tf

    from configs import default
    from pipeline.train import build

    config = default.get_config()
    config.data.resolution, config.data.channels = resolution, 3
    config.train.batch_size = batch_size
    model = build.build_gan(config, resolution=resolution, channels=3, num_classes=0)
    batch = (
        tf.random.uniform([batch_size, resolution, resolution, 3], -1, 1),
        tf.zeros([batch_size], tf.int32),
    )
    step = tf.function(model.train_step)
    step(batch)  # trace
    start = time.perf_counter()
    for _ in range(steps):
        out = step(batch)
    float(out["d_loss"])
    return steps * batch_size / (time.perf_counter() - start)


def _human_bytes(n):
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000:
            return f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} EB"


def main(argv):
    del argv
    jpegs = _photo_jpegs(_IMAGES.value)
    print(
        f"{len(jpegs)} source JPEGs of 375x500, mean "
        f"{np.mean([len(j) for j in jpegs]) / 1000:.0f} KB"
    )
    rows = []
    for resolution, batch in ((64, 64), (256, 16)):
        seconds, record_bytes = measure_ingest(resolution, jpegs)
        img_s = measure_training(resolution, _TRAIN_STEPS.value, batch)
        rows.append((resolution, seconds, record_bytes, img_s, batch))
    print()
    print(
        "| resolution | record size | ingest per image (1 worker) | train img/s per CPU "
        "replica (batch) |"
    )
    print("|---|---|---|---|")
    for resolution, seconds, record_bytes, img_s, batch in rows:
        print(
            f"| {resolution}x{resolution}x3 | {record_bytes / 1000:.1f} KB | "
            f"{seconds * 1000:.2f} ms "
            f"| {img_s:.1f} ({batch}) |"
        )
    print()
    print(
        "| dataset | resolution | TFRecords (PNG, before GZIP) | ingest, 1 worker | ingest, "
        "100 workers "
        "| one epoch on 1 CPU replica |"
    )
    print("|---|---|---|---|---|---|")
    for n in _SCALES:
        for resolution, seconds, record_bytes, img_s, _ in rows:
            hours = n * seconds / 3600
            print(
                f"| {n:,} | {resolution}x{resolution} | {_human_bytes(n * record_bytes)} | "
                f"{hours:,.1f} h "
                f"| {hours * 60 / 100:,.1f} min | {n / img_s / 3600:,.0f} h |"
            )


if __name__ == "__main__":
    app.run(main)
