"""configs/auto.py's channels, chosen from the images before ingest (pipeline.ingest.channels):
1 for a folder stored greyscale, 3 as soon as one readable image is stored in colour."""

import json

import ml_collections
import numpy as np
from PIL import Image

from configs import auto
from pipeline import recipe, runner
from pipeline import workdir as workdir_layout
from pipeline.ingest import channels


def _folder(root, modes, size=12):
    """One image per mode, in two class folders; `modes` as Pillow names them."""
    rng = np.random.default_rng(0)
    for i, mode in enumerate(modes):
        folder = root / f"class{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        grey = rng.integers(0, 256, (size, size), dtype=np.uint8)
        if mode == "P-grey":
            image = Image.fromarray(grey).convert("P")  # a palette of greys
            image.putpalette([v for g in range(256) for v in (g, g, g)])
        elif mode == "RGB":
            image = Image.fromarray(np.stack([grey, grey[::-1], grey.T], -1), "RGB")
        else:
            image = Image.fromarray(grey).convert(mode)
        image.save(folder / f"{i}.png")
    return root


def _data(source):
    return ml_collections.ConfigDict({"source": source, "tfds_data_dir": ""})


def test_a_folder_stored_greyscale_is_one_channel(tmp_path):
    root = _folder(tmp_path / "grey", ["L", "LA", "1", "I;16", "P-grey", "L"])
    (root / "class0" / "notes.png").write_bytes(b"not an image")  # left to ingest's rejects
    value, reason = channels.source_channels(_data(f"folder:{root}"))
    assert value == 1
    assert "all 6 readable images are stored greyscale" in reason
    assert "L 2" in reason


def test_one_colour_image_makes_the_folder_colour(tmp_path):
    root = _folder(tmp_path / "mixed", ["L", "L", "RGB", "LA"])
    assert channels.source_channels(_data(f"folder:{root}")) == (
        3,
        "1 of 4 readable images are stored in colour (modes: L 2, RGB 1, LA 1)",
    )
    # A palette with a colour in it is colour too.
    palette = _folder(tmp_path / "palette", ["L"])
    red = Image.new("P", (4, 4))
    red.putpalette([255, 0, 0] * 256)
    red.save(palette / "class0" / "red.png")
    assert channels.source_channels(_data(f"folder:{palette}"))[0] == 3


def test_arrays_and_object_stores_are_decided_without_reading():
    assert channels.source_channels(_data("digits"))[0] == 1
    value, reason = channels.source_channels(_data("folder:gs://no-such-bucket/images"))
    assert value == 3 and "--config.data.channels=1" in reason


def test_auto_ingests_a_grey_folder_as_grey_and_records_why(tmp_path):
    root = _folder(tmp_path / "grey", ["L"] * 24, size=16)
    config = auto.get_config()
    config.data.source = f"folder:{root}"
    config.data.resolution = 16
    assert config.data.channels is None
    run = runner.Runner(config, tmp_path / "work")
    run.run([workdir_layout.INGEST])
    stats = recipe.read_stats(tmp_path / "work" / workdir_layout.INGEST)
    assert stats["channels"] == 1 and run.config.data.channels == 1
    [choice] = run.data_choices
    assert (choice.field, choice.value, choice.overridden) == ("data.channels", 1, False)
    # Every later stage sees it, and the record keeps it beside the recipe's other choices.
    run.resolve_recipe([workdir_layout.TRAIN])
    record = json.loads((tmp_path / "work" / recipe.RECIPE_FILE).read_text())
    assert record["choices"][0]["field"] == "data.channels"
    assert record["choices"][0]["reason"].startswith("all 24 readable images")
    assert run.config.model.g_width == 32  # grey: the demo's widths, not the colour folder's


def test_a_users_channels_are_kept(tmp_path):
    root = _folder(tmp_path / "grey", ["L"] * 4)
    config = auto.get_config()
    config.data.source = f"folder:{root}"
    config.data.channels = 3
    resolved, chosen = recipe.resolve_data(config)
    assert resolved.data.channels == 3 and chosen == []
