"""How many channels a source's images have, read before ingest (configs/auto.py leaves
`data.channels` unset for this).

The ingest stage writes every image with `data.channels` channels (grey images are copied into
three for RGB; colour ones are converted to luminance for 1), so the choice is made before it
runs, as StyleGAN2-ADA's dataset tool takes it from the images. The rule, a pure function of
the source, so a rerun chooses the same and the ingest fingerprint is that of a written config:

- IDX files and scikit-learn's digits are single-channel arrays: 1.
- A TFDS dataset: its image feature's channels (3 when the feature does not say).
- A local folder: 1 when every image Pillow can open is stored in a greyscale mode (L, LA, 1,
  I, F; or a palette of greys), else 3. Only headers are read: 0.25 s for 10,000 PNGs here
  (warm cache). A picture stored as RGB is trained in colour even when its pixels are grey:
  deciding that from pixels would take a decoded pass over the folder, and a single coloured
  image missed by a sample would lose its colour. Files Pillow cannot open are left to ingest,
  which rejects them by name in rejected.jsonl.
- A folder in an object store: 3 without reading it (one request per image would be slow);
  pass --config.data.channels=1 for grey images.
"""

from absl import logging
from PIL import Image, UnidentifiedImageError

from gan_keras.storage import filesystem
from pipeline.ingest import sources

GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})


def _is_grey(image: Image.Image) -> bool:
    if image.mode in GREY_MODES:
        return True
    if image.mode in ("P", "PA"):
        palette = image.getpalette() or []
        triples = zip(palette[0::3], palette[1::3], palette[2::3], strict=False)
        return all(r == g == b for r, g, b in triples)
    return False


def folder_modes(directory) -> tuple[int, int, dict]:
    """(readable images, of which grey, count per mode) of a local folder source's files."""
    plan = sources.plan_source(f"folder:{directory}")
    root = filesystem.path(directory)
    readable = grey = 0
    modes: dict[str, int] = {}
    for item in plan.work_items:
        for relpath, _ in item:
            try:
                with Image.open(root / relpath) as image:
                    modes[image.mode] = modes.get(image.mode, 0) + 1
                    readable += 1
                    grey += _is_grey(image)
            except (OSError, UnidentifiedImageError, ValueError):
                continue  # ingest rejects it by name
    return readable, grey, modes


def source_channels(data_config) -> tuple[int, str]:
    """(channels, reason) for `data_config.source`'s images."""
    kind, arg = sources.parse_source(data_config.source)
    if kind in ("idx", "digits"):
        return 1, f"{kind} images are single-channel arrays"
    if kind == "tfds":
        builder = sources._tfds_builder(arg, data_config.get("tfds_data_dir", ""))
        image_key, _ = sources._tfds_keys(builder, arg)
        shape = builder.info.features[image_key].shape
        channels = shape[-1] if shape and shape[-1] in (1, 3) else 3
        return channels, f"TFDS {arg!r} images have shape {shape}"
    if filesystem.is_object_store(arg):
        return 3, (
            "an object-store folder is not scanned (one request per image): colour assumed; "
            "--config.data.channels=1 for grey images"
        )
    logging.info("recipe: reading the image modes of %s", arg)
    readable, grey, modes = folder_modes(arg)
    listed = ", ".join(f"{mode} {n:,}" for mode, n in sorted(modes.items(), key=lambda m: -m[1]))
    if readable and grey == readable:
        return 1, f"all {readable:,} readable images are stored greyscale (modes: {listed})"
    return 3, (
        f"{readable - grey:,} of {readable:,} readable images are stored in colour "
        f"(modes: {listed or 'none readable'})"
    )
