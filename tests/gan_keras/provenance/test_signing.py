"""Signed C2PA content credentials (gan_keras.provenance.signing and stamp), read back with
c2pa.Reader: they validate, they record what made the image, and changing a pixel after
signing makes validation fail.

GIF: c2pa-python 0.38 (c2pa-rs 0.91) signs and validates GIF (image/gif is in
c2pa.Builder.get_supported_mime_types()); the GIF test below checks it end to end.
"""

import io
import struct
import zlib

import helpers
import numpy as np
import pytest
from PIL import Image

from gan_keras import images as gan_images
from gan_keras.client import image_files
from gan_keras.provenance import facts as facts_lib
from gan_keras.provenance import metadata, signing, stamp, verify

MODEL = {"name": "generator", "version": 3, "export_fingerprint": "sha256:" + "ab" * 32}


def _facts(**recipe):
    return facts_lib.generation_facts(MODEL, facts_lib.recipe("sample", seed=7, **recipe))


def _png(seed=0, shape=(16, 16, 1)):
    pixels = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    return gan_images.encode_png(pixels), pixels


def _failure_codes(results):
    return {f["code"] for f in results.get("activeManifest", {}).get("failure", [])}


def _replace_pixels(signed: bytes, pixels: np.ndarray) -> bytes:
    """The signed PNG with its IDAT replaced by `pixels`' (every other chunk, the C2PA
    manifest included, kept as it was): what an edit that keeps the metadata produces."""
    new_idat = [body for kind, body in metadata.png_chunks(gan_images.encode_png(pixels))
                if kind == b"IDAT"]  # fmt: skip
    out, done = [metadata.PNG_SIGNATURE], False
    for kind, body in metadata.png_chunks(signed):
        if kind == b"IDAT":
            if not done:
                for chunk in new_idat:
                    crc = struct.pack(">I", zlib.crc32(b"IDAT" + chunk))
                    out.append(struct.pack(">I", len(chunk)) + b"IDAT" + chunk + crc)
                done = True
            continue
        crc = struct.pack(">I", zlib.crc32(kind + body))
        out.append(struct.pack(">I", len(body)) + kind + body + crc)
    return b"".join(out)


@pytest.fixture(scope="module")
def signer(credentials):
    return signing.C2paSigner(credentials.key_path, credentials.chain_path)


def test_a_signed_png_validates_and_records_what_made_it(signer, credentials):
    png, pixels = _png()
    signed = stamp.Stamper(signer).stamp(png, _facts(truncation=0.7), title="x.png")
    # The pixels are untouched.
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(signed)))[..., None], pixels)
    state, manifest, results = helpers.read_c2pa(signed)
    # Valid: signature and hashes check; the test CA is in no trust list.
    assert state == "Valid"
    assert _failure_codes(results) == {verify.UNTRUSTED}
    assert helpers.read_c2pa(signed, anchors=credentials.ca_pem)[0] == "Trusted"
    assert manifest["signature_info"]["common_name"] == credentials.common_name
    actions = next(a for a in manifest["assertions"] if a["label"].startswith("c2pa.actions"))
    created = actions["data"]["actions"][0]
    assert created["action"] == "c2pa.created"
    assert created["digitalSourceType"] == (
        "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
    )
    assert created["softwareAgent"]["name"] == "gan_keras"
    assert created["parameters"]["model"] == MODEL
    ours = next(a for a in manifest["assertions"] if a["label"] == facts_lib.ASSERTION_LABEL)
    assert ours["data"]["recipe"] == {"signature": "sample", "seed": 7, "truncation": 0.7}
    assert ours["data"]["software_agent"]["version"] == facts_lib.software_agent()["version"]
    report = verify.verify_bytes(signed)
    assert report["status"] == "signed" and report["signed"] is True
    assert report["pixels_match"] is True and report["model"] == MODEL


def test_changing_pixels_after_signing_fails_validation(signer):
    png, pixels = _png()
    signed = stamp.Stamper(signer).stamp(png, _facts())
    changed = pixels.copy()
    changed[0, 0, 0] ^= 0xFF
    tampered = _replace_pixels(signed, changed)
    # The manifest is still there, and it no longer matches.
    state, _, results = helpers.read_c2pa(tampered)
    assert state == "Invalid"
    assert "assertion.dataHash.mismatch" in _failure_codes(results)
    report = verify.verify_bytes(tampered)
    assert report["status"] == "invalid" and report["signed"] is False
    assert report["pixels_match"] is False
    assert "pixels changed" in report["summary"]
    # The same surgery with the original pixels keeps it valid: the check is the pixels'.
    assert helpers.read_c2pa(_replace_pixels(signed, pixels))[0] == "Valid"


def test_re_encoding_strips_the_credentials(signer):
    signed = stamp.Stamper(signer).stamp(_png()[0], _facts())
    buf = io.BytesIO()
    Image.open(io.BytesIO(signed)).save(buf, format="PNG")
    assert verify.verify_bytes(buf.getvalue())["status"] == "none"


def test_a_signed_gif_validates(signer):
    frames = np.random.default_rng(1).integers(0, 256, (3, 16, 16, 1), dtype=np.uint8)
    gif = image_files.encode_gif(frames)
    signed = stamp.Stamper(signer).stamp(gif, _facts())
    state, manifest, _ = helpers.read_c2pa(signed, "image/gif")
    assert state == "Valid" and manifest["signature_info"]["common_name"]
    with Image.open(io.BytesIO(signed)) as image:
        assert image.n_frames == 3
        for i in range(3):
            image.seek(i)
            np.testing.assert_array_equal(np.asarray(image.convert("L")), frames[i, ..., 0])
    assert verify.verify_bytes(signed)["status"] == "signed"


def test_a_self_signed_certificate_signs_but_is_never_trusted(credentials):
    # c2pa-rs 0.91 signs with a self-signed leaf and validates it ("Valid"); only a trust
    # anchor makes a signer "Trusted", and the test CA does not vouch for this one.
    self_signed = signing.C2paSigner(credentials.key_path, credentials.self_signed_chain_path)
    signed = stamp.Stamper(self_signed).stamp(_png()[0], _facts())
    assert helpers.read_c2pa(signed, anchors=credentials.ca_pem)[0] == "Valid"
    report = verify.verify_bytes(signed, credentials.ca_pem)
    assert report["status"] == "signed" and report["trusted"] is False
    assert "signer not in a trust list" in report["summary"]


def test_unreadable_keys_and_chains_are_refused_naming_the_problem(credentials, tmp_path):
    with pytest.raises(signing.SigningError, match="cannot read"):
        signing.C2paSigner(tmp_path / "missing.key", credentials.chain_path)
    with pytest.raises(signing.SigningError, match="private key"):
        signing.C2paSigner(credentials.chain_path, credentials.chain_path)
    with pytest.raises(signing.SigningError, match="no PEM certificate"):
        signing.C2paSigner(credentials.key_path, credentials.key_path)


def test_the_signer_says_who_signs(signer, credentials):
    assert credentials.common_name in signer.description
    assert stamp.Stamper(signer).signed is True
    assert "C2PA content credentials" in stamp.Stamper(signer).describe()


def test_lists_in_the_recipe_survive_the_manifest(signer):
    # c2pa-rs stores assertion data as CBOR and mangles lists of numbers ([-2.0, 2.0] comes
    # back as "", [1, 2] as bytes); the manifest holds them as JSON text instead.
    facts = facts_lib.generation_facts(
        MODEL, facts_lib.recipe("edit", strengths=[-2.0, 2.0], labels=[1, 2], seed=0)
    )
    report = verify.verify_bytes(stamp.Stamper(signer).stamp(_png()[0], facts))
    assert report["recipe"] == {
        "signature": "edit",
        "strengths": [-2.0, 2.0],
        "labels": [1, 2],
        "seed": 0,
    }
