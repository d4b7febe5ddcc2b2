"""Without a key: the same facts as unsigned XMP and PNG text chunks (or GIF comment and XMP),
read back by other tools (Pillow) and by gan-verify, which calls them "unsigned", never signed.
"""

import io
import json

import numpy as np
import pytest
from PIL import Image

from gan_keras import images as gan_images
from gan_keras.client import image_files
from gan_keras.provenance import facts as facts_lib
from gan_keras.provenance import metadata, stamp, verify

MODEL = {"name": "generator", "version": 2, "export_fingerprint": "sha256:" + "cd" * 32}
TRAINED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"


def _facts():
    recipe = facts_lib.recipe("edit", seed=3, direction="towards_3", strength=2.0, label=None)
    return facts_lib.generation_facts(MODEL, recipe)


def _png():
    pixels = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    return gan_images.encode_png(pixels), pixels


def test_an_unsigned_png_carries_the_facts_in_xmp_and_text_chunks_and_keeps_its_pixels():
    png, pixels = _png()
    facts = _facts()
    stamped = stamp.Stamper().stamp(png, facts)
    # The image data chunks are copied byte for byte.
    idat = [body for kind, body in metadata.png_chunks(png) if kind == b"IDAT"]
    assert [body for kind, body in metadata.png_chunks(stamped) if kind == b"IDAT"] == idat
    with Image.open(io.BytesIO(stamped)) as image:
        np.testing.assert_array_equal(np.asarray(image), pixels)
        # Another reader (Pillow) sees the XMP and the text chunks.
        info = image.info
    assert f'Iptc4xmpExt:DigitalSourceType="{TRAINED}"' in info["XML:com.adobe.xmp"]
    assert json.loads(info["gan_keras:provenance"]) == facts
    assert info["Software"] == f"gan_keras {facts_lib.software_agent()['version']}"
    read = metadata.read_metadata(stamped)
    assert read["facts"] == facts and read["digital_source_type"] == TRAINED
    assert facts["recipe"] == {
        "signature": "edit",
        "seed": 3,
        "direction": "towards_3",
        "strength": 2.0,
    }


def test_verify_calls_unsigned_metadata_unsigned_and_never_signed():
    stamped = stamp.Stamper().stamp(_png()[0], _facts())
    report = verify.verify_bytes(stamped)
    assert report["status"] == "unsigned"
    assert report["signed"] is False and report["credentials"] is False
    assert report["validation_state"] is None and report["pixels_match"] is None
    assert report["unsigned_metadata"] is True
    assert report["model"] == MODEL and report["digital_source_type"] == TRAINED
    assert report["summary"].startswith("unsigned: generated (trainedAlgorithmicMedia) by model")
    assert "signed C2PA" not in report["summary"]
    # Anyone can write the same metadata: nothing in it makes an image "signed".
    forged = metadata.embed_png(_png()[0], {**_facts(), "signed": True, "validation": "Valid"})
    assert verify.verify_bytes(forged)["status"] == "unsigned"
    assert "signed" not in stamp.Stamper().describe().replace("unsigned", "")


def test_stamping_twice_replaces_the_metadata():
    once = stamp.Stamper().stamp(_png()[0], _facts())
    other = facts_lib.generation_facts(MODEL, facts_lib.recipe("sample", seed=9))
    twice = stamp.Stamper().stamp(once, other)
    texts = [b for k, b in metadata.png_chunks(twice) if k == b"iTXt"]
    assert len(texts) == 2  # one XMP, one facts chunk
    assert metadata.read_metadata(twice)["facts"]["recipe"]["seed"] == 9


def test_only_the_xmp_left_still_says_generated():
    stamped = stamp.Stamper().stamp(_png()[0], _facts())
    chunks = [(k, b) for k, b in metadata.png_chunks(stamped)
              if not b.startswith(metadata.FACTS_KEYWORD.encode())]  # fmt: skip
    xmp_only = metadata.PNG_SIGNATURE + b"".join(metadata._chunk(k, b) for k, b in chunks)
    report = verify.verify_bytes(xmp_only)
    assert report["status"] == "unsigned" and report["digital_source_type"] == TRAINED


def test_an_unsigned_gif_carries_the_facts_and_keeps_its_frames():
    frames = np.random.default_rng(2).integers(0, 256, (4, 8, 8, 1), dtype=np.uint8)
    gif = image_files.encode_gif(frames)
    stamped = stamp.Stamper().stamp(gif, _facts())
    with Image.open(io.BytesIO(stamped)) as image:
        assert image.n_frames == 4 and image.info["loop"] == 0
        assert image.info["comment"].startswith(metadata.GIF_COMMENT_PREFIX)
        for i in range(4):
            image.seek(i)
            np.testing.assert_array_equal(np.asarray(image.convert("L")), frames[i, ..., 0])
    read = metadata.read_metadata(stamped)
    assert read["facts"] == _facts() | {"created": read["facts"]["created"]}
    assert read["digital_source_type"] == TRAINED
    assert verify.verify_bytes(stamped)["status"] == "unsigned"


def test_images_without_provenance_and_other_formats():
    png = _png()[0]
    assert verify.verify_bytes(png)["status"] == "none"
    assert verify.verify_bytes(png)["summary"].startswith("no provenance")
    with pytest.raises(ValueError, match="PNG and GIF"):
        stamp.Stamper().stamp(b"\xff\xd8\xff\xe0 not really a jpeg", _facts())
    with pytest.raises(metadata.MetadataError):
        metadata.embed_png(b"GIF89a...", _facts())
    assert verify.verify_bytes(b"garbage")["status"] == "none"


def test_the_export_fingerprint_follows_the_graph_and_weights_not_the_assets(tmp_path):
    version = tmp_path / "generator" / "4"
    (version / "variables").mkdir(parents=True)
    (version / "assets.extra").mkdir()
    (version / "saved_model.pb").write_bytes(b"graph")
    (version / "variables" / "variables.index").write_bytes(b"index")
    (version / "assets.extra" / "model_card.md").write_text("card")
    facts = facts_lib.model_facts(version)
    assert facts["name"] == "generator" and facts["version"] == 4
    (version / "assets.extra" / "model_card.md").write_text("another card")
    assert facts_lib.model_facts(version) == facts
    (version / "variables" / "variables.index").write_bytes(b"other weights")
    assert facts_lib.model_facts(version)["export_fingerprint"] != facts["export_fingerprint"]
