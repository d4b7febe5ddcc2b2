"""The watermark-survival benchmark (benchmarks/watermark_survival.py) on a few real Fashion-MNIST
images: at 256x256, the size the library accepts, a mark comes back from a clean copy and is gone
from a greyscale one; unmarked images are not taken for marked ones (the chance level the
benchmark's numbers stand on); and at 28x28, which the library refuses and whose 9 carrier
blocks cannot hold 32 bits, the row says so instead of raising."""

import numpy as np
import pytest

from benchmarks import watermark_survival as ws

PAYLOAD = "a53c960f"  # 16 ones, 16 zeros: an unmarked flat image decodes as 0-bits, half right


@pytest.fixture(scope="module")
def images():
    return ws.load_fashion_mnist(6)


def test_imwatermark_imports_without_torch():
    wm = ws.import_imwatermark()
    assert wm.WatermarkEncoder and wm.maxDct.EmbedMaxDct and wm.dwtDctSvd.EmbedDwtDctSvd


@pytest.mark.parametrize("method", ws.METHODS)
def test_mark_survives_a_clean_copy_at_256_and_unmarked_images_are_not_detected(images, method):
    row = ws.measure(
        ws.resize(images, 256), method, ws.payload_bits(PAYLOAD), perturbations=("clean", "grey")
    )
    assert row["library"] == "accepted" and row["note"] == ""
    assert row["psnr_db"] > 35
    clean, grey = row["perturbations"]["clean"], row["perturbations"]["grey"]
    assert clean["marked"]["exact"] >= 0.8  # 5 of 6 or better
    assert clean["marked"]["mean_bit_accuracy"] > 0.95
    # The chance level: the same images unmarked, decoded and compared with the same payload.
    assert clean["unmarked"]["detected"] == 0
    assert clean["unmarked"]["mean_bit_accuracy"] < 0.75
    # Both methods write the U (chroma) channel only: a greyscale copy holds no mark.
    assert grey["marked"]["detected"] == 0


def test_tiny_size_is_reported_not_raised(images):
    bits = ws.payload_bits(PAYLOAD)
    refused = ws.measure(images, "dwtDct", bits, below_guard=False)
    assert refused["size"] == 28
    assert refused["library"].startswith("refused: RuntimeError: image too small")
    assert "perturbations" not in refused
    assert refused["note"].startswith("silent failure: 9 carrier blocks for 32 bits")

    below = ws.measure(images, "dwtDctSvd", bits, perturbations=("clean",))
    assert below["library"] == refused["library"]
    assert below["perturbations"]["clean"]["marked"]["exact"] == 0  # 23 bits have no carrier


def test_run_finds_the_smallest_surviving_size_and_writes_the_refusal(images):
    result = ws.run(
        {"fashion_mnist": images[:4]}, [28, 256], ["dwtDctSvd"], [PAYLOAD], log=lambda _: None
    )
    smallest = result["smallest_surviving"]["fashion_mnist/dwtDctSvd/32"]
    assert smallest["clean"] == 256
    assert smallest["grey"] is None
    result["command"] = "test"
    table = ws.markdown(result)
    assert "| fashion_mnist | dwtDctSvd | 32 | 28 | refused |" in table
    assert "image too small" in table
    json_rows = [row for row in result["rows"] if row["size"] == 256]
    assert np.isfinite(json_rows[0]["psnr_db"])


def test_imports_beside_the_benchmarks_that_define_the_same_flag_names():
    # xdist runs many test files in one process: absl refuses a flag name defined twice.
    import benchmarks.quality  # noqa: F401  (--images)
    import pipeline.generate  # noqa: F401  (--seed)
