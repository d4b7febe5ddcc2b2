r"""What provenance adds to a 16-image :sample: latency with signed credentials, with the
unsigned metadata only, and without stamping, in one process.

    nice -n 19 .venv/bin/python -m benchmarks.provenance_latency [--requests=200] [--n=16] \
        [--endpoint=sample|predict_png] [--model_base_path=<workdir>/export/generator] \
        [--out=result.json]

`--endpoint=predict_png` measures a :predict of `serving_default_png` instead: n latents in,
n PNGs out, each stamped on its own (one grid PNG for :sample).

Without --model_base_path it exports an untrained DCGAN-sized generator (28x28x1, latent
100, as benchmarks/serve_load_test.py does) into a temporary directory. A throwaway test CA
and EC P-256 signing certificate are made with `cryptography` (tests/helpers.py's
make_test_credentials). Three apps over the same export, all in this process: stamping off
(create_app(stamp_images=False)), unsigned (the default) and signed (one C2paSigner); the
requests go through Flask's test client (no sockets), interleaved round-robin so a load
change on the machine hits the three alike. Prints p50/p99/mean per mode and the
differences; the body sizes too.
"""

import argparse
import json
import pathlib
import statistics
import sys
import tempfile
import time

import numpy as np

from benchmarks import serving_demo

REPO = pathlib.Path(__file__).resolve().parents[1]


def _export_default(root: pathlib.Path) -> pathlib.Path:
    import keras

    from gan_keras.export import sampling_model

    keras.utils.set_random_seed(0)
    z = keras.Input((100,))
    h = keras.layers.Dense(7 * 7 * 64, activation="relu")(z)
    h = keras.layers.Reshape((7, 7, 64))(h)
    h = keras.layers.Conv2DTranspose(32, 5, strides=2, padding="same", activation="relu")(h)
    out = keras.layers.Conv2DTranspose(1, 5, strides=2, padding="same", activation="tanh")(h)
    base = root / "generator"
    sampling_model.export_generator(keras.Model(z, out), base, latent_dim=100)
    return base


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_base_path", default=None)
    parser.add_argument("--requests", type=int, default=200, help="per mode")
    parser.add_argument("--warmup", type=int, default=10, help="per mode, not measured")
    parser.add_argument("--n", type=int, default=16, help="images per request")
    parser.add_argument("--endpoint", choices=("sample", "predict_png"), default="sample")
    parser.add_argument("--out", default=None, help="also write the result as JSON here")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO))
    sys.path.append(str(REPO / "tests"))  # after REPO: tests/gan_keras must not shadow gan_keras
    import helpers

    from gan_keras.provenance import signing, stamp
    from gan_keras.serving import app as serving_app

    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        base = pathlib.Path(args.model_base_path or _export_default(tmp))
        ca = helpers.make_test_credentials(tmp)
        signer = signing.C2paSigner(ca.key_path, ca.chain_path)
        modes = {
            "no_stamping": {"stamp_images": False},
            "unsigned": {},
            "signed": {"stamper": stamp.Stamper(signer)},
        }
        apps = {
            mode: serving_app.create_app(base, "g", 256, 0, **kwargs)
            for mode, kwargs in modes.items()
        }
        clients = {mode: flask_app.test_client() for mode, flask_app in apps.items()}
        times = {mode: [] for mode in modes}
        sizes = {}
        try:
            for i in range(args.warmup + args.requests):
                for mode, client in clients.items():
                    # Different seeds per request, the same ones in every mode.
                    start = time.perf_counter()
                    if args.endpoint == "sample":
                        response = client.get(f"/v1/models/g:sample?n={args.n}&seed={i}")
                    else:
                        z = np.random.default_rng(i).standard_normal((args.n, 100))
                        body = {"signature_name": "serving_default_png", "instances": z.tolist()}
                        response = client.post("/v1/models/g:predict", json=body)
                    elapsed = time.perf_counter() - start
                    if response.status_code != 200:
                        print(response.get_data(as_text=True), file=sys.stderr)
                        return 1
                    if i >= args.warmup:
                        times[mode].append(elapsed * 1000)
                    sizes[mode] = len(response.data)
        finally:
            for flask_app in apps.values():
                flask_app.config["REGISTRY"].stop()
    result = {
        "endpoint": args.endpoint,
        "n": args.n,
        "requests_per_mode": args.requests,
        "model_base_path": args.model_base_path or "untrained 28x28x1 DCGAN generator",
        "modes": {
            mode: {
                "p50_ms": round(statistics.median(values), 2),
                "p99_ms": round(serving_demo.percentile(values, 99), 2),
                "mean_ms": round(statistics.fmean(values), 2),
                "body_bytes": sizes[mode],
            }
            for mode, values in times.items()
        },
    }
    base_mode = result["modes"]["no_stamping"]
    for mode in ("unsigned", "signed"):
        for key in ("p50_ms", "p99_ms", "mean_ms"):
            result["modes"][mode][f"added_{key}"] = round(
                result["modes"][mode][key] - base_mode[key], 2
            )
        # Request i of each mode ran back to back with the same seed: the paired differences.
        paired = [a - b for a, b in zip(times[mode], times["no_stamping"], strict=True)]
        result["modes"][mode]["paired_added_p50_ms"] = round(statistics.median(paired), 2)
        result["modes"][mode]["paired_added_p99_ms"] = round(serving_demo.percentile(paired, 99), 2)
    print(
        f"{'mode':<12} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'+p50':>7} {'+p99':>7} "
        f"{'bytes':>7} {'paired +p50':>11} {'paired +p99':>11}"
    )
    for mode, row in result["modes"].items():
        print(
            f"{mode:<12} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} {row['mean_ms']:>8.2f} "
            f"{row.get('added_p50_ms', 0):>7.2f} {row.get('added_p99_ms', 0):>7.2f} "
            f"{row['body_bytes']:>7} {row.get('paired_added_p50_ms', 0):>11.2f} "
            f"{row.get('paired_added_p99_ms', 0):>11.2f}"
        )
    if args.out:
        pathlib.Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
