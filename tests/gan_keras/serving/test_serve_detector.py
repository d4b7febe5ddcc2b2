"""POST :verify asks the served version's `detect` signature about images without credentials.

The version served is a `detect` signature alone (an untrained 8x8 detector: its random
weights give each image its own probability) in TF Serving's layout with a model_info.json,
which is all :verify reads; a whole sampling export would add ~10 s of tracing.
"""

import json

import keras
import numpy as np
import pytest

from gan_keras import images as gan_images
from gan_keras.export import detect_signature, layout
from gan_keras.provenance import detector as detector_lib
from gan_keras.provenance import facts as facts_lib
from gan_keras.provenance import stamp
from gan_keras.serving import app as serving_app


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    base = tmp_path_factory.mktemp("serve_detector") / "gen"
    model = detector_lib.build_detector((8, 8, 1), seed=5)
    archive = keras.export.ExportArchive()
    detect_signature.add_detect_endpoint(archive, model, (8, 8, 1))
    info = {"image_shape": [8, 8, 1], "signatures": ["detect"]}
    layout.write_version(
        lambda path: archive.write_out(str(path), verbose=False),
        base,
        {layout.MODEL_INFO_ASSET: json.dumps(info)},
    )
    flask_app = serving_app.create_app(base, "gen", 16, 0)
    yield model, flask_app.test_client()
    flask_app.config["REGISTRY"].stop()


def _verify(client, body):
    r = client.post("/v1/models/gen:verify", data=body, content_type="image/png")
    assert r.status_code == 200, r.get_data(as_text=True)
    return r.get_json()


def test_verify_reports_the_detectors_probability_for_an_unstamped_image(served):
    model, client = served
    pixels = np.random.default_rng(0).integers(0, 256, (8, 8, 1), dtype=np.uint8)
    report = _verify(client, gan_images.encode_png(pixels))
    assert report["status"] == "none"
    expected = detector_lib.probabilities(model, pixels[None])[0]
    assert report["detector"]["probability"] == pytest.approx(expected, rel=1e-5)
    assert {k: v for k, v in report["detector"].items() if k != "probability"} == {
        "model": "gen",
        "version": 1,
    }
    # Unsigned metadata is only a claim: the detector still looks at the pixels.
    facts = facts_lib.generation_facts(
        {"name": "gen", "version": 1, "export_fingerprint": "sha256:00"},
        facts_lib.recipe("sample", seed=1),
    )
    stamped = _verify(client, stamp.Stamper().stamp(gan_images.encode_png(pixels), facts))
    assert stamped["status"] == "unsigned"
    assert stamped["detector"]["probability"] == pytest.approx(expected, rel=1e-5)


def test_verify_says_why_the_detector_does_not_apply_to_another_shape(served):
    _, client = served
    grid = gan_images.encode_png(np.zeros((16, 16, 1), np.uint8))
    entry = _verify(client, grid)["detector"]
    assert entry["probability"] is None
    assert entry["not_applicable"].startswith("not applicable: shape 16x16x1")
    assert "8x8x1" in entry["not_applicable"]
