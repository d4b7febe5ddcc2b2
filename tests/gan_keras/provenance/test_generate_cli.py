"""Every PNG and GIF pipeline.generate writes carries provenance, read back from the files:
signed C2PA credentials with --c2pa_key/--c2pa_cert, the same facts unsigned without them.

Every mode that writes images is covered: plain sampling (grid and --out_dir), --interpolate
(GIF and PNGs), --edit, --project and an image-to-image model's --input / --input_dir.
"""

import io

import c2pa
import helpers
import numpy as np
import pytest

from gan_keras import images as gan_images
from gan_keras.export import sampling_model as gan_export
from gan_keras.export import transform_model
from gan_keras.models import pix2pix
from gan_keras.provenance import facts as facts_lib
from gan_keras.provenance import metadata, verify

# The module's exports take ~12 s on 2 cores.
pytestmark = pytest.mark.slow

LATENT = 8

_cli = helpers.run_generate_cli


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    root = tmp_path_factory.mktemp("provenance-generate")
    gan_export.export_generator(helpers.tiny_generator(False), root / "gen", latent_dim=LATENT)
    gan_export.export_generator(helpers.tiny_generator(False, 1), root / "gen", latent_dim=LATENT)
    sr = pix2pix.build_unet_generator(condition_shape=(8, 8, 1), image_shape=(16, 16, 1), width=8)
    task = helpers.task_config("super_resolution", scale=2)
    transform_model.export_image_to_image(sr, root / "sr", task_config=task)
    return root


def _signed_flags(credentials):
    return f"--c2pa_key={credentials.key_path}", f"--c2pa_cert={credentials.chain_path}"


def _written(*dirs_and_files):
    paths = []
    for path in dirs_and_files:
        paths += sorted(path.iterdir()) if path.is_dir() else [path]
    return paths


def _validates(path) -> dict:
    mime = "image/gif" if path.suffix == ".gif" else "image/png"
    with c2pa.Reader(mime, io.BytesIO(path.read_bytes())) as reader:
        assert reader.get_validation_state() == "Valid", path
    report = verify.verify_bytes(path.read_bytes())
    assert report["status"] == "signed" and report["pixels_match"] is True, path
    return report


def test_unsigned_sampling_stamps_the_grid_and_every_file(bases, tmp_path):
    grid, out_dir = tmp_path / "grid.png", tmp_path / "images"
    _cli(f"--model_base_path={bases / 'gen'}", "--num=3", "--seed=5", f"--out={grid}",
         f"--out_dir={out_dir}", "--truncation=0.7")  # fmt: skip
    model = facts_lib.model_facts(bases / "gen" / "2")  # the highest version
    assert model["name"] == "gen" and model["version"] == 2
    files = _written(grid, out_dir)
    assert len(files) == 4
    for path in files:
        report = verify.verify_bytes(path.read_bytes())
        assert report["status"] == "unsigned" and report["signed"] is False, path
        assert report["model"] == model
        assert report["digital_source_type"] == facts_lib.DIGITAL_SOURCE_TYPE
        recipe = report["recipe"]
        assert recipe["signature"] == "truncated_sample" and recipe["seed"] == 5
        assert recipe["truncation"] == 0.7 and recipe["num"] == 3
    recipes = [verify.verify_bytes(p.read_bytes())["recipe"] for p in files]
    assert recipes[0]["layout"] == "grid" and [r.get("index") for r in recipes[1:]] == [0, 1, 2]


def test_signed_walk_gif_and_frames_validate(bases, tmp_path, credentials):
    walk, out_dir = tmp_path / "walk.gif", tmp_path / "frames"
    _cli(f"--model_base_path={bases / 'gen'}", "--interpolate=3,7", "--steps=4", f"--out={walk}",
         f"--out_dir={out_dir}", *_signed_flags(credentials))  # fmt: skip
    files = _written(walk, out_dir)
    assert len(files) == 5
    for path in files:
        report = _validates(path)
        assert report["signer"]["common_name"] == credentials.common_name
        assert report["recipe"]["signature"] == "interpolate"
        assert (report["recipe"]["seed_a"], report["recipe"]["seed_b"]) == (3, 7)


def test_signed_edits_record_direction_and_strength(bases, tmp_path, credentials):
    grid, out_dir = tmp_path / "edit.png", tmp_path / "edits"
    _cli(f"--model_base_path={bases / 'gen'}", "--edit=0", "--strengths=-2,2", "--num=2",
         f"--out={grid}", f"--out_dir={out_dir}", *_signed_flags(credentials))  # fmt: skip
    reports = [_validates(path) for path in _written(grid, out_dir)]
    assert reports[0]["recipe"]["strengths"] == [-2.0, 2.0]
    assert [(r["recipe"]["index"], r["recipe"]["strength"]) for r in reports[1:]] == [
        (0, -2.0),
        (0, 2.0),
        (1, -2.0),
        (1, 2.0),
    ]
    assert all(r["recipe"]["direction"] == "0" for r in reports)


def test_projection_records_the_targets_hash(bases, tmp_path):
    target = tmp_path / "target.png"
    pixels = np.random.default_rng(0).integers(0, 256, (8, 8, 1), dtype=np.uint8)
    target.write_bytes(gan_images.encode_png(pixels))
    out = tmp_path / "recon.png"
    _cli(f"--model_base_path={bases / 'gen'}", f"--project={target}", "--steps=2", f"--out={out}")
    recipe = verify.verify_bytes(out.read_bytes())["recipe"]
    assert recipe["signature"] == "project"
    assert recipe["input_sha256"] == facts_lib.sha256_hex(target.read_bytes())


def test_image_to_image_outputs_record_their_inputs_hash(bases, tmp_path, credentials):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(2):
        low = np.random.default_rng(i).integers(0, 256, (8, 8, 1), dtype=np.uint8)
        (inputs / f"im{i}.png").write_bytes(gan_images.encode_png(low))
    out_dir = tmp_path / "out"
    _cli(f"--model_base_path={bases / 'sr'}", f"--input_dir={inputs}", f"--out_dir={out_dir}",
         *_signed_flags(credentials))  # fmt: skip
    for name in ("im0.png", "im1.png"):
        report = _validates(out_dir / name)
        assert report["recipe"]["task"] == "super_resolution"
        assert report["recipe"]["input_sha256"] == facts_lib.sha256_hex(
            (inputs / name).read_bytes()
        )
    single = tmp_path / "single.png"
    _cli(f"--model_base_path={bases / 'sr'}", f"--input={inputs / 'im0.png'}", f"--out={single}")
    assert verify.verify_bytes(single.read_bytes())["status"] == "unsigned"
    assert metadata.read_metadata(single.read_bytes())["facts"]["model"]["name"] == "sr"


def test_a_key_without_its_certificate_chain_is_a_usage_error(bases, tmp_path, credentials):
    with pytest.raises(Exception, match="Give both --c2pa_key and --c2pa_cert"):
        _cli(f"--model_base_path={bases / 'gen'}", f"--out={tmp_path / 'x.png'}",
             f"--c2pa_key={credentials.key_path}")  # fmt: skip
    missing_key = f"--c2pa_key={tmp_path / 'none.key'}"
    with pytest.raises(SystemExit, match="--c2pa_key/--c2pa_cert: cannot read"):
        _cli(f"--model_base_path={bases / 'gen'}", f"--out={tmp_path / 'x.png'}", missing_key,
             f"--c2pa_cert={credentials.chain_path}")  # fmt: skip
    assert not (tmp_path / "x.png").exists()


def test_a_file_whose_provenance_cannot_be_written_is_removed(bases, tmp_path, monkeypatch):
    from gan_keras.provenance import stamp

    def refuse(self, data, facts, title=None):
        raise ValueError("refused")

    monkeypatch.setattr(stamp.Stamper, "stamp", refuse)
    out = tmp_path / "grid.png"
    with pytest.raises(SystemExit, match="provenance not written"):
        _cli(f"--model_base_path={bases / 'gen'}", "--num=2", f"--out={out}")
    assert not out.exists()
