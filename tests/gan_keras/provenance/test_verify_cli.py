"""gan-verify (gan_keras.provenance.cli): one line per image, a JSON report, and exit codes.

The console script is setup.py's `gan-verify=gan_keras.provenance.cli:console_main`; here it is
run as `python -m gan_keras.provenance.cli` (the same main) and in process.
"""

import json
import os
import subprocess
import sys

import helpers
import numpy as np

from gan_keras import images as gan_images
from gan_keras.provenance import facts as facts_lib
from gan_keras.provenance import signing, stamp
from gan_keras.provenance.cli import main

MODEL = {"name": "generator", "version": 5, "export_fingerprint": "sha256:" + "ef" * 32}


def _files(tmp_path, credentials):
    pixels = np.random.default_rng(0).integers(0, 256, (8, 8, 1), dtype=np.uint8)
    png = gan_images.encode_png(pixels)
    facts = facts_lib.generation_facts(MODEL, facts_lib.recipe("sample", seed=1))
    signer = signing.C2paSigner(credentials.key_path, credentials.chain_path)
    paths = {
        "signed": stamp.Stamper(signer).stamp(png, facts),
        "unsigned": stamp.Stamper().stamp(png, facts),
        "plain": png,
    }
    for name, data in paths.items():
        (tmp_path / f"{name}.png").write_bytes(data)
    # The signed file with its manifest kept and one pixel changed.
    changed = pixels.copy()
    changed[3, 3, 0] ^= 0x80
    from test_signing import _replace_pixels

    (tmp_path / "tampered.png").write_bytes(_replace_pixels(paths["signed"], changed))
    return {name: str(tmp_path / f"{name}.png") for name in [*paths, "tampered"]}


def test_one_line_per_image_and_exit_0_when_nothing_is_invalid(tmp_path, credentials, capsys):
    files = _files(tmp_path, credentials)
    status = main([files["signed"], files["unsigned"], files["plain"]])
    lines = capsys.readouterr().out.splitlines()
    assert status == 0 and len(lines) == 3
    assert lines[0].startswith(f"{files['signed']}: signed C2PA credentials, Valid: signed by ")
    assert credentials.common_name in lines[0] and "model generator version 5" in lines[0]
    assert "pixels match" in lines[0]
    assert lines[1].startswith(f"{files['unsigned']}: unsigned: generated")
    assert lines[2] == f"{files['plain']}: no provenance: no content credentials and no " + (
        "generation metadata"
    )


def test_trust_anchors_make_the_test_signer_trusted(tmp_path, credentials, capsys):
    files = _files(tmp_path, credentials)
    assert main([files["signed"], f"--trust_anchors={credentials.ca_path}"]) == 0
    assert "Trusted" in capsys.readouterr().out


def test_changed_pixels_exit_1_and_the_json_says_why(tmp_path, credentials, capsys):
    files = _files(tmp_path, credentials)
    status = main(["--json", files["tampered"], files["signed"]])
    reports = json.loads(capsys.readouterr().out)
    assert status == 1
    assert [r["status"] for r in reports] == ["invalid", "signed"]
    assert reports[0]["pixels_match"] is False and reports[0]["signed"] is False
    assert reports[1]["model"] == MODEL and reports[1]["recipe"]["seed"] == 1


def test_a_missing_file_exits_2(tmp_path, capsys):
    assert main([str(tmp_path / "missing.png")]) == 2
    assert "missing.png" in capsys.readouterr().err


def test_the_module_runs_as_a_command(tmp_path, credentials):
    files = _files(tmp_path, credentials)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env["PYTHONPATH"] = str(helpers.REPO) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-m", "gan_keras.provenance.cli", files["tampered"]],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    assert "INVALID C2PA credentials" in proc.stdout and "pixels changed" in proc.stdout
