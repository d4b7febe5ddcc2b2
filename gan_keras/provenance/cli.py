r"""gan-verify: does an image carry content credentials, who signed them, which model made it?

    gan-verify IMAGE... [--json] [--trust_anchors=ca.pem] [--model=<export base path or version>]

One line per image (or a JSON list with --json): "signed" (C2PA credentials that validate;
"Trusted" when the signer chains to a certificate in --trust_anchors), "INVALID" (credentials
that no longer match the image, e.g. its pixels changed), "unsigned" (generation metadata
without credentials: anyone can write or strip it) or "no provenance". With --model, an image
without valid credentials is also shown to that export's `detect` signature, the evaluate
stage's detector: the report's "detector" holds the probability that this model made it
(gan_keras.provenance.detection), which needs no metadata at all.

Exit status: 0 when every image was read, 1 when any image's credentials are invalid, 2 when a
file could not be read.
"""

import argparse
import json
import pathlib
import sys

from gan_keras.provenance import verify


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gan-verify",
        description="Reads the content credentials and generation metadata of images.",
    )
    parser.add_argument("images", nargs="+", help="PNG or GIF files (JPEG: credentials only)")
    parser.add_argument("--json", action="store_true", help="print the full reports as JSON")
    parser.add_argument(
        "--trust_anchors",
        default=None,
        help="PEM file of CA certificates to trust (signers chaining to one are 'Trusted')",
    )
    parser.add_argument(
        "--model",
        default=None,
        help="an exported model (base path: its highest version; or a version directory) whose "
        "detect signature checks images without valid credentials",
    )
    return parser


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    anchors = None
    if args.trust_anchors:
        try:
            anchors = pathlib.Path(args.trust_anchors).read_text()
        except OSError as e:
            print(f"gan-verify: --trust_anchors: {e}", file=sys.stderr)
            return 2
    detect = None
    if args.model:
        from gan_keras.provenance import detection  # lazily: loading the model imports TF

        try:
            detect = detection.load_exported(args.model)
        except (OSError, ValueError) as e:
            print(f"gan-verify: --model: {e}", file=sys.stderr)
            return 2
    reports, status = [], 0
    for name in args.images:
        try:
            data = pathlib.Path(name).read_bytes()
        except OSError as e:
            print(f"gan-verify: {name}: {e}", file=sys.stderr)
            status = 2
            continue
        report = {"path": name, **verify.verify_bytes(data, anchors)}
        summary = report["summary"]
        if detect is not None:
            run_detect, info, model_name, version = detect
            detection.add_detector_report(report, data, info, run_detect, model_name, version)
            summary += "; " + detection.summary_suffix(report.get("detector"))
        reports.append(report)
        if report["status"] == "invalid":
            status = max(status, 1)
        if not args.json:
            print(f"{name}: {summary}")
    if args.json:
        print(json.dumps(reports, indent=2, sort_keys=True))
    return status


def console_main() -> None:
    sys.exit(main())


if __name__ == "__main__":
    console_main()
