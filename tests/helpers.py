"""Helpers that tests import by name (`from helpers import ...`): the repo root, running the
pipeline as a user would, a tiny generator, a task section, a real HTTP server on a thread, a small
synthetic ingest dir with an evaluate config sized for it, and a throwaway test CA with a C2PA
signing certificate (make_test_credentials).

Test files never import each other; whatever two of them share lives here. pytest puts this
folder (tests/, where conftest.py is) on sys.path, so `helpers` imports from any test.
The library and TensorFlow imports are inside the functions: conftest.py imports this module,
and must configure TensorFlow's devices before anything starts it.
"""

import dataclasses
import datetime
import json
import os
import pathlib
import subprocess
import sys
import threading
import time

import numpy as np
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

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


def run_generate_cli(*args):
    """Runs pipeline.generate's main in this process with these flags (faster than a
    subprocess; the subprocess tests check the entry points themselves). Imported here, not at
    the top: pipeline.generate defines its absl flags when imported."""
    from absl import flags

    from pipeline import generate as generate_cli

    try:
        flags.FLAGS(["pipeline.generate", *args])
        generate_cli.main(["pipeline.generate"])
    finally:
        flags.FLAGS.unparse_flags()


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


def task_config(name: str, **overrides):
    """configs/default.py's `task` section with `name` in use and `overrides` (the tests'
    image-to-image models mostly take scale 2: 8x8 -> 16x16)."""
    import ml_collections

    from configs import default

    # Built from a dict, not updated in place: a test may give a field a value of the wrong
    # type on purpose (validation must name it), which a typed ConfigDict would refuse.
    fields = default.get_config().task.to_dict()
    return ml_collections.ConfigDict({**fields, "name": name, **overrides})


# ----------------------------------------------------------------------------
# The model server's REST front (gan_keras.serving.rest_server), on a background thread
# ----------------------------------------------------------------------------


class RestServerThread:
    """The Flask app of gan_keras.serving.app.create_app behind the server `gan-serve` runs
    (uvicorn and rest_server.RestApp), on a background thread. Port 0 picks a free port."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, threads: int = 4):
        from gan_keras.serving import rest_server

        self.socket = rest_server.bind(host, port)
        self.host = host
        self.port = self.socket.getsockname()[1]
        self.app = rest_server.RestApp(app, threads)
        self.server = rest_server.make_server(self.app)
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, name="rest", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> "RestServerThread":
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the REST server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=30)
        self.app.close()
        self.socket.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


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
    # So has the detector (tests/pipeline/evaluate/test_detector_eval.py, on the smoke run).
    ev.detector = False
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


# ----------------------------------------------------------------------------
# A throwaway test CA and C2PA signing certificate (never a real key)
# ----------------------------------------------------------------------------
#
# What C2PA (c2pa-rs, through c2pa-python) asks of a signing certificate, as in c2pa-python's
# own test fixtures (tests/fixtures/es256_certs.pem: a leaf, then its intermediate and root):
# X.509 v3, issued by a CA in the chain, basicConstraints CA:false, key usage
# digitalSignature (critical), an extended key usage of emailProtection (or documentSigning,
# timeStamping, OCSPSigning; not anyExtendedKeyUsage), subject and authority key identifiers.
# The CA: basicConstraints CA:true, keyCertSign. Keys: EC P-256 (ES256).


@dataclasses.dataclass
class Credentials:
    key_path: object
    chain_path: object
    ca_pem: str
    ca_path: object
    self_signed_chain_path: object
    common_name: str = "gan_keras test signer"


def _cert_name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "gan_keras tests"),
        ]
    )


def _cert_key_usage(*, signing: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=signing,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=not signing,
        crl_sign=not signing,
        encipher_only=False,
        decipher_only=False,
    )


def _leaf_cert(subject, issuer, public_key, issuer_key, issuer_public_key, now):
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_cert_key_usage(signing=True), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public_key), critical=False
        )
        .sign(issuer_key, hashes.SHA256())
    )


def _cert_pem(cert) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def make_test_credentials(root) -> Credentials:
    """A test CA, a leaf signing certificate under it and its key, written under `root`:
    signer.key, chain.pem (leaf then CA), ca.pem, and self_signed.pem (the same key,
    certified by itself: it signs, and no trust anchor vouches for it)."""
    root = pathlib.Path(root)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _cert_name("gan_keras test CA")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_cert_key_usage(signing=False), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf_name = _cert_name(Credentials.common_name)
    leaf = _leaf_cert(leaf_name, ca_name, key.public_key(), ca_key, ca_key.public_key(), now)
    # The same key certified by itself: it signs, and no trust anchor vouches for it.
    self_signed = _leaf_cert(leaf_name, leaf_name, key.public_key(), key, key.public_key(), now)
    key_path = root / "signer.key"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    chain_path = root / "chain.pem"
    chain_path.write_bytes(_cert_pem(leaf) + _cert_pem(ca))
    self_signed_path = root / "self_signed.pem"
    self_signed_path.write_bytes(_cert_pem(self_signed))
    ca_path = root / "ca.pem"
    ca_path.write_bytes(_cert_pem(ca))
    return Credentials(key_path, chain_path, _cert_pem(ca).decode(), ca_path, self_signed_path)


def read_c2pa(data: bytes, mime: str = "image/png", anchors: bytes | str | None = None):
    """c2pa.Reader's (validation state, active manifest, validation results) for an image,
    trusting the PEM `anchors` when given (else no trust list: signed images read "Valid")."""
    import io

    import c2pa

    context = None
    if anchors:
        settings = c2pa.Settings.from_dict(
            {"trust": {"trust_anchors": anchors}, "verify": {"verify_trust": True}}
        )
        context = c2pa.Context(settings=settings)
    with c2pa.Reader(mime, io.BytesIO(data), context=context) as reader:
        return (
            reader.get_validation_state(),
            reader.get_active_manifest(),
            (reader.get_validation_results() or {}),
        )
