r"""Fingerprints of what the pipeline produces: trained weights and export outputs, hashed.

A refactor that claims "behaviour unchanged" runs this before and after and compares the two
JSON files: every checkpoint variable (generator, discriminator, optimizer slots, EMA) after a
few training steps, and every export signature's outputs on fixed inputs, for a DCGAN, a
StyleGAN2 and an image-to-image (super-resolution) run on scikit-learn's digits.

It drives only the public command line (``python -m pipeline.run``) and reads the artifacts
with TensorFlow alone, so the same script measures any layout of the code:

  python -m benchmarks.fingerprint --out=/tmp/before.json
  (move code)
  python -m benchmarks.fingerprint --out=/tmp/after.json
  python -m benchmarks.fingerprint --compare /tmp/before.json /tmp/after.json
"""

import hashlib
import json
import os
import subprocess
import sys
import tempfile

from absl import app, flags

_OUT = flags.DEFINE_string("out", None, "Where to write the fingerprints (JSON).")
_COMPARE = flags.DEFINE_list("compare", [], "Two fingerprint files to compare instead.")
_STEPS = flags.DEFINE_integer("steps", 12, "Training steps of each run.")

# name -> extra config overrides on top of configs/smoke.py.
RUNS = {
    "dcgan": [],
    "stylegan2": [
        "--config.model.architecture=stylegan2",
        "--config.model.mapping_layers=2",
        "--config.model.w_dim=32",
        "--config.train.r1_gamma=0.1",
        "--config.train.r1_every=4",
    ],
    "super_resolution": [
        "--config.task.name=super_resolution",
        "--config.task.scale=2",
        "--config.train.eval_every=0",
        "--config.task.l1_reference=False",
    ],
}


def _digest(array) -> str:
    import numpy as np

    array = np.ascontiguousarray(array)
    return hashlib.sha256(
        str(array.dtype).encode() + str(array.shape).encode() + array.tobytes()
    ).hexdigest()[:16]


def _checkpoint_digests(train_dir: str) -> dict:
    import tensorflow as tf

    found = {}
    for root, _, files in os.walk(train_dir):
        for f in files:
            if f.endswith(".index"):
                prefix = os.path.join(root, f[: -len(".index")])
                reader = tf.train.load_checkpoint(prefix)
                rel = os.path.relpath(prefix, train_dir)
                for name in sorted(reader.get_variable_to_shape_map()):
                    if "save_counter" in name:
                        continue
                    found[f"{rel}:{name}"] = _digest(reader.get_tensor(name))
    return found


def _fixed_input(spec, seed: int):
    import numpy as np
    import tensorflow as tf

    shape = [1 if d is None else d for d in spec.shape.as_list()] if spec.shape.rank else []
    rng = np.random.default_rng(seed)
    if spec.dtype == tf.string:
        return tf.constant(np.full(shape, b"", dtype=object), tf.string)
    if spec.dtype.is_integer:
        return tf.constant(rng.integers(0, 2, size=shape), spec.dtype)
    if spec.dtype.is_bool:
        return tf.constant(np.zeros(shape, bool))
    return tf.constant(rng.uniform(-0.5, 0.5, size=shape), spec.dtype)


def _export_digests(export_dir: str) -> dict:
    import numpy as np
    import tensorflow as tf

    found = {}
    versions = sorted(d for d in os.listdir(export_dir) if d.isdigit())
    model = tf.saved_model.load(os.path.join(export_dir, versions[-1]))
    for name in sorted(model.signatures):
        fn = model.signatures[name]
        _, kwargs = fn.structured_input_signature
        inputs = {}
        for i, (key, spec) in enumerate(sorted(kwargs.items())):
            inputs[key] = _fixed_input(spec, i)
        try:
            outputs = fn(**inputs)
        except Exception as e:  # noqa: BLE001 - recorded: the same inputs must fail the same way
            found[name] = f"error: {type(e).__name__}"
            continue
        for key in sorted(outputs):
            value = outputs[key].numpy()
            if value.dtype == object:  # PNG bytes: their pixels (zlib output may vary)
                value = np.stack([tf.io.decode_png(v).numpy() for v in value.reshape(-1)])
            found[f"{name}:{key}"] = _digest(value)
    return found


def _metrics_digests(evaluate_dir: str) -> dict:
    """The evaluate stage's numbers (rounded to 6 significant digits), file by file."""
    found = {}
    for f in sorted(os.listdir(evaluate_dir)):
        # The manifest holds times, paths and file fingerprints of this run, not results.
        if f.endswith(".json") and f != "manifest.json":
            with open(os.path.join(evaluate_dir, f)) as fh:
                found[f] = _numbers(json.load(fh))
    return found


def _numbers(value):
    if isinstance(value, dict):
        return {
            k: _numbers(v)
            for k, v in value.items()
            # Times, and paths (which name each run's temporary workdir), are not results.
            if "time" not in k and "second" not in k and not k.endswith("_path")
        }
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    if isinstance(value, float):
        return float(f"{value:.6g}")
    return value


def fingerprint(steps: int) -> dict:
    result = {}
    for name, overrides in RUNS.items():
        with tempfile.TemporaryDirectory() as workdir:
            cmd = [
                sys.executable,
                "-m",
                "pipeline.run",
                "--config=configs/smoke.py",
                f"--workdir={workdir}",
                "--stages=ingest,train,evaluate,export",
                "--force_export",
                f"--config.train.steps={steps}",
                "--config.train.checkpoint_every=6",
                "--config.train.sample_every=6",
                "--config.train.log_every=6",
                "--config.train.eval_every=0",
                *overrides,
            ]
            subprocess.run(cmd, check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
            result[name] = {
                "weights": _checkpoint_digests(os.path.join(workdir, "train")),
                "export": _export_digests(os.path.join(workdir, "export", "generator")),
                "metrics": _metrics_digests(os.path.join(workdir, "evaluate")),
            }
    return result


def _flatten(value, prefix=""):
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): json.dumps(value)}


def compare(a_path: str, b_path: str) -> int:
    with open(a_path) as f:
        a = json.load(f)
    with open(b_path) as f:
        b = json.load(f)
    differ = 0
    for run in sorted(set(a) | set(b)):
        for part in ("weights", "export", "metrics"):
            x, y = a.get(run, {}).get(part, {}), b.get(run, {}).get(part, {})
            if part == "metrics":
                x, y = _flatten(x), _flatten(y)
            bad = sorted(k for k in set(x) | set(y) if x.get(k) != y.get(k))
            differ += len(bad)
            print(
                f"{run:18s} {part:8s} {len(x):4d} entries, {len(bad)} differ"
                + (f": {bad[:5]}" if bad else "")
            )
    print("IDENTICAL" if not differ else f"{differ} entries differ")
    return 1 if differ else 0


def main(argv):
    del argv
    if _COMPARE.value:
        sys.exit(compare(*_COMPARE.value))
    result = fingerprint(_STEPS.value)
    with open(_OUT.value, "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
    print(
        f"wrote {_OUT.value}: "
        + ", ".join(
            f"{k} {len(v['weights'])} variables, {len(v['export'])} outputs"
            for k, v in result.items()
        )
    )


if __name__ == "__main__":
    app.run(main)
