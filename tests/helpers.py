"""Helpers that tests import by name (`from helpers import ...`): the repo root, running the
pipeline as a user would, a tiny generator, a real HTTP server on a thread, and a small
synthetic ingest dir with an evaluate config sized for it.

Test files never import each other; whatever two of them share lives here. pytest puts this
folder (tests/, where conftest.py is) on sys.path, so `helpers` imports from any test.
The library and TensorFlow imports are inside the functions: conftest.py imports this module,
and must configure TensorFlow's devices before anything starts it.
"""

import json
import os
import pathlib
import subprocess
import sys
import threading

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------
# The pipeline, run as a user would
# ----------------------------------------------------------------------------


def run_pipeline(workdir, *args, config="configs/smoke.py", check=True, timeout=600, env=None):
    """Runs `python -m pipeline.run` in a subprocess, as a user would."""
    cmd = [
        sys.executable,
        "-m",
        "pipeline.run",
        f"--config={REPO / config}",
        f"--workdir={workdir}",
        *args,
    ]
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    result = subprocess.run(
        cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=full_env
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"pipeline failed ({result.returncode}):\n{result.stdout}\n{result.stderr[-6000:]}"
        )
    return result


def copy_ingest_and_judge(smoke_workdir, workdir):
    """A new workdir holding the smoke run's ingest output and its trained judge.

    The judge is cached by data fingerprint and recipe (pipeline.judge), so a run of the smoke
    data with the smoke judge recipe reuses it instead of training its own (~15 s on 2 cores):
    tests that run their own train and evaluate stages on the smoke data start here."""
    import shutil

    workdir = pathlib.Path(workdir)
    for stage in ("ingest", "judge"):
        shutil.copytree(pathlib.Path(smoke_workdir) / stage, workdir / stage)
    return workdir


def export_tiny_generators(root, *, latent_dim: int, num_classes: int):
    """Exports an unconditional and a conditional tiny generator (version 1 each) under
    root/uncond and root/cond, as the serving tests read them; returns root."""
    from gan_keras.export import sampling_model

    root = pathlib.Path(root)
    for name, conditional in (("uncond", False), ("cond", True)):
        generator = tiny_generator(
            conditional, 0, latent_dim=latent_dim, num_classes=num_classes, channels=1
        )
        sampling_model.export_generator(
            generator,
            root / name,
            latent_dim=latent_dim,
            num_classes=num_classes if conditional else 0,
        )
    return root


# ----------------------------------------------------------------------------
# A tiny generator
# ----------------------------------------------------------------------------


def tiny_generator(
    conditional: bool,
    seed: int = 0,
    *,
    latent_dim: int = 8,
    num_classes: int = 3,
    channels: int = 1,
):
    """A small generator honouring the generator contract: z (and label) -> 8x8 images in
    [-1, 1]."""
    import keras

    keras.utils.set_random_seed(seed)
    z = keras.Input((latent_dim,))
    inputs, h = z, z
    if conditional:
        label = keras.Input((), dtype="int32")
        emb = keras.layers.Flatten()(keras.layers.Embedding(num_classes, latent_dim)(label))
        h = keras.layers.Concatenate()([z, emb])
        inputs = [z, label]
    h = keras.layers.Reshape((4, 4, 8))(keras.layers.Dense(4 * 4 * 8)(h))
    out = keras.layers.Conv2DTranspose(channels, 3, strides=2, padding="same", activation="tanh")(h)
    return keras.Model(inputs, out)


# ----------------------------------------------------------------------------
# A real (waitress) HTTP server for a WSGI app, on a background thread
# ----------------------------------------------------------------------------


class ServerThread:
    """Runs an app on a real waitress server in a background thread.

    Port 0 picks a free port (see .port).
    """

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, threads: int = 4):
        import waitress

        self.server = waitress.create_server(app, host=host, port=port, threads=threads)
        self.host = host
        self.port = self.server.effective_port
        self._thread = threading.Thread(target=self.server.run, name="waitress", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> "ServerThread":
        self._thread.start()
        return self

    def stop(self) -> None:
        # Closing every dispatcher empties the asyncore map, which ends run().
        # It must happen in the loop's own thread (closing sockets under a
        # running select() races), which is what the trigger's thunks are for.
        def close_all():
            for dispatcher in list(self.server._map.values()):
                dispatcher.close()

        if self._thread.is_alive():
            try:
                self.server.trigger.pull_trigger(close_all)
            except OSError:
                # The loop already closed its trigger (it is ending on its own): nothing to wake.
                pass
            self._thread.join(timeout=10)
        else:
            close_all()
        self.server.task_dispatcher.shutdown()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# ----------------------------------------------------------------------------
# The evaluate stage's inputs: an ingest dir written directly as GZIP TFRecords
# (sklearn digits, 16x16), a small evaluate config, a 'good' fake generator
# ----------------------------------------------------------------------------

NUM_SAMPLES = 300  # small_config's evaluate.num_samples


def _example(image, label, index):
    from gan_keras import images
    from gan_keras.data import records

    return records.make_example(
        images.encode_png(image),
        image.shape[0],
        image.shape[1],
        image.shape[2],
        label,
        f"digits:{index}",
    )


def _digits():
    from sklearn import datasets

    d = datasets.load_digits()
    x = np.kron(d.images, np.ones((2, 2)))  # 8x8 -> 16x16
    x = np.clip(np.round(x * 255.0 / 16.0), 0, 255).astype(np.uint8)[..., None]
    return x, d.target.astype(np.int64)


def write_ingest(workdir, labelled=True, num_train=1200):
    import tensorflow as tf

    from gan_keras.data import records

    x, y = _digits()
    if not labelled:
        y = np.full_like(y, -1)
    ingest = pathlib.Path(workdir) / "ingest"
    ingest.mkdir(parents=True, exist_ok=True)
    options = tf.io.TFRecordOptions(compression_type="GZIP")
    splits = {
        records.TRAIN: (x[:num_train], y[:num_train]),
        records.EVAL: (x[num_train:], y[num_train:]),
    }
    for split, (xs, ys) in splits.items():
        shards = 2 if split == records.TRAIN else 1
        for s in range(shards):
            path = ingest / records.shard_name(split, s, shards)
            with tf.io.TFRecordWriter(str(path), options) as w:
                for i in range(s, len(xs), shards):
                    w.write(_example(xs[i], ys[i], i))
    (ingest / records.LABELS_FILE).write_text(
        json.dumps([str(i) for i in range(10)] if labelled else [])
    )
    return x[:num_train], y[:num_train], x[num_train:], y[num_train:]


def small_config(conditional=False):
    from configs import default

    config = default.get_config()
    config.model.latent_dim = 8
    config.model.conditional = conditional
    ev = config.evaluate
    ev.num_samples = NUM_SAMPLES
    ev.classifier_epochs = 1
    ev.classifier_min_steps = 300
    ev.classifier_batch_size = 64
    ev.kid_subsets = 5
    ev.kid_subset_size = 100
    ev.classifier_score_splits = 5
    # The controls' measurements have their own tests (test_control_metrics.py).
    ev.controls = False
    return config


def real_plus_noise_fn(train_x, train_y):
    """A 'good' generator: real train images (not the eval ones) with slight noise."""

    def sample_fn(num, seed, labels=None):
        rng = np.random.default_rng(seed)
        if labels is None:
            idx = rng.integers(0, len(train_x), num)
        else:
            idx = np.array([rng.choice(np.flatnonzero(train_y == c)) for c in labels])
        noisy = train_x[idx].astype(np.int32) + rng.integers(-8, 9, size=(num, *train_x.shape[1:]))
        return np.clip(noisy, 0, 255).astype(np.uint8)

    return sample_fn
