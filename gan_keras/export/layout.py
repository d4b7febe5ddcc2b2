"""The on-disk layout of exported models: TensorFlow Serving's, plus our assets.

    <base_path>/<version>/saved_model.pb, variables/   integer versions, 0-9 only
    <base_path>/<version>/assets.extra/model_info.json  written by gan_keras.export.sampling_model
    <base_path>/<version>/assets.extra/evaluation.json  the evaluation that let it out
    <base_path>/<version>/assets.extra/directions.json  names of the `edit` signature's directions
    <base_path>/<version>/assets.extra/model_card.md    data, training, metrics, intended use
    <base_path>/<version>/assets.extra/tf_serving_warmup_requests  TF Serving's warm-up
                                                        requests (gan_keras.export.warmup)

Every reader and writer of that layout (the exporter, the export and evaluate
stages, the model server, the sampling CLI, the runner's report) takes the
names and the version listing from here. No TensorFlow import: the runner and
the evaluator's gate list versions without loading it.
"""

import os
import pathlib
import re
import shutil
import tempfile

ASSETS_DIR = "assets.extra"
MODEL_INFO_ASSET = "model_info.json"
EVALUATION_ASSET = "evaluation.json"
DIRECTIONS_ASSET = "directions.json"
MODEL_CARD_ASSET = "model_card.md"
# TF Serving replays this TFRecord of PredictionLog protos when it loads a version.
WARMUP_ASSET = "tf_serving_warmup_requests"
SAVED_MODEL_FILE = "saved_model.pb"

# TF Serving takes only ASCII-digit directory names as versions (str.isdigit
# would also accept other scripts' digits).
VERSION_NAME = re.compile(r"[0-9]+")


def is_version_name(name: str) -> bool:
    return VERSION_NAME.fullmatch(name) is not None


def list_versions(base_path) -> list[int]:
    """Integer version directories under `base_path`, ascending (none if absent)."""
    base_path = pathlib.Path(base_path)
    if not base_path.is_dir():
        return []
    return sorted(
        int(entry.name)
        for entry in base_path.iterdir()
        if entry.is_dir() and is_version_name(entry.name)
    )


def latest_version(base_path) -> int | None:
    versions = list_versions(base_path)
    return versions[-1] if versions else None


def version_dir(base_path, version: int | None = None) -> pathlib.Path:
    """The directory of `version`, or of the highest version under `base_path`."""
    base = pathlib.Path(base_path)
    versions = list_versions(base)
    if not versions:
        raise FileNotFoundError(f"No integer version directories under {base}")
    if version is None:
        return base / str(versions[-1])
    if version not in versions:
        raise FileNotFoundError(f"Version {version} not found under {base} (have {versions})")
    return base / str(version)


def asset_path(model_dir, name: str) -> pathlib.Path:
    """``<model_dir>/assets.extra/<name>``."""
    return pathlib.Path(model_dir) / ASSETS_DIR / name


def write_version(
    write_model, base_path, assets: dict[str, bytes | str]
) -> tuple[int, pathlib.Path]:
    """Writes the next version under `base_path`: `write_model(directory)` writes the
    SavedModel, then `assets` go to assets.extra/. Built in a dot-prefixed sibling (which TF
    Serving and our server ignore) and renamed into place, so a server polling `base_path`
    never sees a half-written version. Returns (version, its directory)."""
    base_path = pathlib.Path(base_path)
    base_path.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(dir=base_path, prefix=".export-tmp-"))
    try:
        model_dir = tmp / "model"
        write_model(model_dir)
        (model_dir / ASSETS_DIR).mkdir(exist_ok=True)
        for name, data in assets.items():
            asset_path(model_dir, name).write_bytes(
                data.encode("utf-8") if isinstance(data, str) else data
            )
        # Another exporter may take a number between our listing and our rename:
        # renaming onto its (non-empty) directory fails, so try the next.
        for _ in range(100):
            version = max(list_versions(base_path), default=0) + 1
            final = base_path / str(version)
            try:
                os.rename(model_dir, final)
            except OSError:
                if final.exists():
                    continue
                raise
            return version, final
        raise RuntimeError(f"Could not claim a version directory under {base_path}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
