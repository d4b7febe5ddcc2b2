r"""Writes images from an exported generator: samples, truncated samples, walks, edits, projections.

    python -m pipeline.generate --model_base_path=<workdir>/export/generator \
        --num=64 --seed=0 --out=grid.png [--label=3] [--out_dir=DIR] [--version=N] \
        [--truncation=0.7]
    # A latent walk from seed A to seed B: a looping GIF for --out=*.gif, else a PNG strip.
    python -m pipeline.generate --model_base_path=... --interpolate=3,7 --steps=16 \
        --out=walk.gif [--duration_ms=100] [--label=0 --label_b=2]
    # An edit: one row per sample, one column per strength.
    python -m pipeline.generate --model_base_path=... --edit=sefa_0 --strengths=-3,0,3 \
        --seed=0 --num=4 --out=edit.png [--label=3] [--truncation=0.7]
    # Projection: the latent whose image best matches a PNG of the model's exact shape.
    python -m pipeline.generate --model_base_path=... --project=photo.png [--steps=200] \
        --out=recon.png --latent_out=z.npy [--label=3]
    # Image-to-image models (super_resolution, inpainting, translation): the condition PNG
    # in, the output PNG out; inpainting also takes a mask (1 channel, white = hole).
    python -m pipeline.generate --model_base_path=... --input=low_res.png --out=out.png \
        [--mask=mask.png]
    python -m pipeline.generate --model_base_path=... --input_dir=in/ --out_dir=out/ \
        [--mask=mask.png | --mask_dir=masks/]

The same seed (and version) always gives the same images. ``--out_dir`` also
writes one PNG per image (``sample_00000.png``, ...). The library behind it is
gan_keras.client, which the model server's endpoints share.

Every PNG and GIF written says it was generated, and by which model (gan_keras.provenance):
with ``--c2pa_key=key.pem --c2pa_cert=chain.pem`` as signed C2PA content credentials, without
them as unsigned XMP / PNG text metadata (the same facts; no credentials, and nothing claims
a signature). Check a file with ``gan-verify IMAGE...`` (docs/provenance.md).

``--input`` / ``--input_dir`` are for image-to-image exports and the sampling
flags for sampling ones; the wrong kind is an error saying what to give. The
PNGs must have exactly the size and channels of model_info.json's "inputs"
(nothing is resized or converted between grayscale and RGB). ``--input_dir``
transforms every ``*.png`` in the directory (not recursively, in name order)
into ``--out_dir`` under the same names; the first bad file stops the run.

One concern, at ~530 lines: the command line's modes and their flags, each a thin call into
gan_keras.client; the one part that could leave is the provenance writer around its outputs
(``_Provenance``), whose stamping itself lives in gan_keras.provenance.
"""

import io
import logging
import pathlib
import sys

import numpy as np
from absl import app, flags

from gan_keras import images as gan_images
from gan_keras.client import image_files, sampling, transform
from gan_keras.client.model import (
    RequestError,
    image_shape,
    is_image_to_image,
    load_model,
    require_image_to_image,
    require_sampling_model,
    takes_label,
    task_name,
)
from gan_keras.provenance import facts as provenance_facts
from gan_keras.provenance import flags as provenance_flags
from gan_keras.provenance import signing as provenance_signing
from gan_keras.provenance import stamp as provenance_stamp
from gan_keras.storage import atomic

_MODEL_BASE_PATH = flags.DEFINE_string(
    "model_base_path", None, "Directory with integer SavedModel versions."
)
_VERSION = flags.DEFINE_integer("version", None, "Version to use (default: the highest).")
_NUM = flags.DEFINE_integer("num", 64, "Number of images (default 64; 4 rows with --edit).")
_SEED = flags.DEFINE_integer("seed", 0, "Sampling seed; the same seed gives the same images.")
_LABEL = flags.DEFINE_integer(
    "label",
    None,
    "Class for conditional models (default: random labels). Required with "
    "--project, and with --interpolate, where it is the first image's class.",
)
_OUT = flags.DEFINE_string(
    "out",
    "grid.png",
    "Image to write ('' for none): the grid; with --interpolate a GIF if it "
    "ends in .gif, else a PNG strip; with --project the reconstruction (only if given).",
)
_OUT_DIR = flags.DEFINE_string(
    "out_dir",
    None,
    "Also write one PNG per image into this directory; with --input_dir: where the outputs go.",
)
_TRUNCATION = flags.DEFINE_float(
    "truncation",
    None,
    "Truncation psi in [0, 1] for the latents (1: plain samples, 0: the "
    "mean latent). With plain sampling or --edit.",
)
_INTERPOLATE = flags.DEFINE_string(
    "interpolate", None, "A,B: images along the latent path from seed A's sample to seed B's."
)
_LABEL_B = flags.DEFINE_integer(
    "label_b", None, "With --interpolate: the last image's class (default: --label)."
)
_STEPS = flags.DEFINE_integer(
    "steps",
    None,
    f"Images along the walk with --interpolate (default "
    f"{sampling.DEFAULT_INTERPOLATION_STEPS}, >= 2); optimisation steps with --project "
    f"(default {sampling.DEFAULT_PROJECT_STEPS}).",
)
_DURATION_MS = flags.DEFINE_integer(
    "duration_ms",
    image_files.DEFAULT_GIF_FRAME_MS,
    "Milliseconds per GIF frame with --interpolate.",
)
_PROJECT = flags.DEFINE_string(
    "project",
    None,
    "A PNG to fit a latent to; it must have the model's exact image shape "
    "(height, width, channels): nothing is resized or converted.",
)
_LATENT_OUT = flags.DEFINE_string(
    "latent_out",
    None,
    "With --project: .npy file for the fitted latent: z [latent_dim], or w [w_dim] for a "
    "StyleGAN2 generator (model_info.json's control_space).",
)
_EDIT = flags.DEFINE_string("edit", None, "Edit direction, by name (directions.json) or index.")
_STRENGTH = flags.DEFINE_float("strength", None, "With --edit: one strength.")
_STRENGTHS = flags.DEFINE_string(
    "strengths",
    None,
    "With --edit: comma-separated strengths (default "
    f"{','.join(f'{s:g}' for s in sampling.DEFAULT_EDIT_STRENGTHS)}).",
)

_INPUT = flags.DEFINE_string(
    "input",
    None,
    "Image-to-image models: the condition PNG (the low-resolution image, the "
    "image with a hole, the edge map or grayscale image) with exactly model_info.json's "
    "inputs.image shape; the output goes to --out.",
)
_INPUT_DIR = flags.DEFINE_string(
    "input_dir",
    None,
    "Image-to-image models: transform every *.png in this directory into "
    "--out_dir, under the same file names.",
)
_MASK = flags.DEFINE_string(
    "mask",
    None,
    "Inpainting: the mask PNG (1 channel, the output's size; white, any value "
    ">= 128, = hole). With --input_dir: the mask for every image.",
)
_MASK_DIR = flags.DEFINE_string(
    "mask_dir",
    None,
    "Inpainting with --input_dir: a directory with a mask PNG of each input's file name.",
)

_MODES = ("interpolate", "project", "edit")
# Flags that only one mode reads (or a subset of modes), to reject them elsewhere.
# "transform" is --input / --input_dir (image-to-image models).
_ONLY_IN = {
    "label_b": ("interpolate",),
    "duration_ms": ("interpolate",),
    "steps": ("interpolate", "project"),
    "latent_out": ("project",),
    "strength": ("edit",),
    "strengths": ("edit",),
    "truncation": (None, "edit"),
    "out_dir": (None, "interpolate", "edit", "transform"),
    "mask": ("transform",),
    "mask_dir": ("transform",),
}
_MODE_NAMES = {None: "plain sampling", "transform": "--input or --input_dir"}
# The flags of sampling models, which image-to-image ones do not take.
_SAMPLING_FLAGS = (
    "num",
    "seed",
    "label",
    "label_b",
    "truncation",
    "interpolate",
    "steps",
    "duration_ms",
    "project",
    "latent_out",
    "edit",
    "strength",
    "strengths",
)


def _present(name: str) -> bool:
    return flags.FLAGS[name].present


def _mode() -> str | None:
    if _INPUT.value is not None or _INPUT_DIR.value is not None:
        sampling_flags = [name for name in _SAMPLING_FLAGS if _present(name)]
        if sampling_flags:
            raise app.UsageError(
                f"--{sampling_flags[0]} is for sampling models: --input and "
                "--input_dir run an image-to-image model, which takes only the "
                "picture (and --mask for inpainting)"
            )
        mode = "transform"
    else:
        modes = [m for m in _MODES if flags.FLAGS[m].value is not None]
        if len(modes) > 1:
            raise app.UsageError(
                f"Give at most one of --{', --'.join(_MODES)}; got --{' and --'.join(modes)}"
            )
        mode = modes[0] if modes else None
    for name, modes_ok in _ONLY_IN.items():
        if _present(name) and mode not in modes_ok:
            where = " or ".join(_MODE_NAMES.get(m, f"--{m}") for m in modes_ok)
            raise app.UsageError(f"--{name} applies only with {where}")
    return mode


def _check_model_kind(model, mode: str | None) -> None:
    """Sampling flags on an image-to-image model, or --input on a sampling one: one line."""
    if mode == "transform":
        require_image_to_image(
            model,
            "--input" if _INPUT.value is not None else "--input_dir",
            "use --num/--seed, --interpolate, --edit or --project",
        )
    elif is_image_to_image(model):
        given = [name for name in _SAMPLING_FLAGS if _present(name)]
        mask = " --mask=mask.png" if transform.takes_mask(model) else ""
        require_sampling_model(
            model,
            f"--{given[0]}" if given else "Sampling (no --input given)",
            f"give --input=in.png{mask} --out=out.png, or --input_dir=DIR{mask} --out_dir=DIR "
            f"({transform.describe_transform_inputs(model)})",
        )


class _Provenance:
    """Stamps every file written with the facts of this model and the request's recipe."""

    def __init__(self, model, stamper: provenance_stamp.Stamper):
        self.stamper = stamper
        self.model = provenance_facts.model_facts(model.path)

    def stamp(self, path, signature: str, **recipe) -> None:
        facts = provenance_facts.generation_facts(
            self.model, provenance_facts.recipe(signature, **recipe)
        )
        try:
            self.stamper.stamp_file(path, facts)
        except (provenance_signing.SigningError, ValueError, OSError) as e:
            # No image leaves without its provenance.
            pathlib.Path(path).unlink(missing_ok=True)
            raise RequestError(
                f"{path}: provenance not written ({e}); the file was removed"
            ) from None

    def stamp_dir(self, out_dir, count: int, signature: str, per_image, **recipe) -> None:
        """The `count` files image_files.write_images wrote into out_dir (sample_00000.png,
        ...); per_image(i) adds image i's own recipe fields."""
        if out_dir is None:
            return
        for i in range(count):
            self.stamp(
                pathlib.Path(out_dir) / f"sample_{i:05d}.png", signature, **recipe, **per_image(i)
            )


def _stamper() -> provenance_stamp.Stamper:
    if (provenance_flags.C2PA_KEY.value is None) != (provenance_flags.C2PA_CERT.value is None):
        raise app.UsageError("Give both --c2pa_key and --c2pa_cert (or neither: unsigned)")
    if provenance_flags.C2PA_KEY.value is None:
        stamper = provenance_stamp.Stamper()
    else:
        try:
            signer = provenance_signing.C2paSigner(
                provenance_flags.C2PA_KEY.value, provenance_flags.C2PA_CERT.value
            )
        except provenance_signing.SigningError as e:
            raise RequestError(f"--c2pa_key/--c2pa_cert: {e}") from None
        stamper = provenance_stamp.Stamper(signer)
    logging.info("Images carry %s", stamper.describe())
    return stamper


def _sample(model, provenance: _Provenance) -> None:
    if not _OUT.value and not _OUT_DIR.value:
        raise app.UsageError("Nothing to write: give --out and/or --out_dir")
    images = sampling.sample_images(
        model, num=_NUM.value, seed=_SEED.value, label=_LABEL.value, truncation=_TRUNCATION.value
    )
    image_files.write_images(images, out=_OUT.value or None, out_dir=_OUT_DIR.value)
    recipe = {
        "seed": _SEED.value,
        "num": _NUM.value,
        "label": _LABEL.value,
        "truncation": _TRUNCATION.value,
    }
    signature = "sample" if _TRUNCATION.value is None else "truncated_sample"
    if _OUT.value:
        provenance.stamp(_OUT.value, signature, layout="grid", **recipe)
    provenance.stamp_dir(_OUT_DIR.value, len(images), signature, lambda i: {"index": i}, **recipe)


def _interpolate(model, provenance: _Provenance) -> None:
    if not _OUT.value and not _OUT_DIR.value:
        raise app.UsageError("Nothing to write: give --out and/or --out_dir")
    seed_a, seed_b = sampling.parse_int_pair(_INTERPOLATE.value, "--interpolate")
    if _LABEL.value is None and takes_label(model, "interpolate"):
        raise app.UsageError(
            "--label is required with --interpolate on a conditional model "
            "(the first image's class; --label_b the last's, default --label)"
        )
    label_b = _LABEL_B.value if _LABEL_B.value is not None else _LABEL.value
    if _DURATION_MS.value < 10:
        raise app.UsageError(f"--duration_ms must be >= 10, got {_DURATION_MS.value}")
    steps = sampling.DEFAULT_INTERPOLATION_STEPS if _STEPS.value is None else _STEPS.value
    images = sampling.interpolate_images(
        model, seed_a=seed_a, seed_b=seed_b, steps=steps, label_a=_LABEL.value, label_b=label_b
    )
    if _OUT.value:
        image_files.write_image_file(_OUT.value, images, duration_ms=_DURATION_MS.value)
    image_files.write_images(images, out_dir=_OUT_DIR.value)
    recipe = {
        "seed_a": seed_a,
        "seed_b": seed_b,
        "steps": steps,
        "label_a": _LABEL.value,
        "label_b": label_b,
    }
    if _OUT.value:
        provenance.stamp(_OUT.value, "interpolate", layout="walk", **recipe)
    provenance.stamp_dir(
        _OUT_DIR.value, len(images), "interpolate", lambda i: {"index": i}, **recipe
    )


def _edit(model, provenance: _Provenance) -> None:
    if not _OUT.value and not _OUT_DIR.value:
        raise app.UsageError("Nothing to write: give --out and/or --out_dir")
    if _STRENGTH.value is not None and _STRENGTHS.value is not None:
        raise app.UsageError("Give --strength or --strengths, not both")
    if _STRENGTH.value is not None:
        strengths = [_STRENGTH.value]
    elif _STRENGTHS.value is not None:
        strengths = sampling.parse_floats(_STRENGTHS.value, "--strengths")
    else:
        strengths = list(sampling.DEFAULT_EDIT_STRENGTHS)
    direction = sampling.resolve_direction(_EDIT.value, sampling.load_directions(model.path))
    num = _NUM.value if _present("num") else 4
    images = sampling.edit_images(
        model,
        num=num,
        seed=_SEED.value,
        direction=direction,
        strengths=strengths,
        label=_LABEL.value,
        truncation=_TRUNCATION.value,
    )
    if _OUT.value:
        gan_images.save_png(_OUT.value, image_files.edit_grid(images))
    image_files.write_images(images.reshape((-1, *images.shape[2:])), out_dir=_OUT_DIR.value)
    recipe = {
        "seed": _SEED.value,
        "num": num,
        "direction": _EDIT.value,
        "direction_index": direction,
        "label": _LABEL.value,
        "truncation": _TRUNCATION.value,
    }
    if _OUT.value:
        provenance.stamp(_OUT.value, "edit", layout="grid", strengths=strengths, **recipe)
    per_strength = len(strengths)
    provenance.stamp_dir(
        _OUT_DIR.value,
        num * per_strength,
        "edit",
        lambda i: {"index": i // per_strength, "strength": strengths[i % per_strength]},
        **recipe,
    )


def _project(model, provenance: _Provenance) -> None:
    out = _OUT.value if _present("out") else None
    if not out and not _LATENT_OUT.value:
        raise app.UsageError(
            "Nothing to write: give --out (the reconstruction) and/or "
            "--latent_out (the latent, .npy)"
        )
    steps = sampling.DEFAULT_PROJECT_STEPS if _STEPS.value is None else _STEPS.value
    if _LABEL.value is None and takes_label(model, "project"):
        raise app.UsageError("--label is required with --project on a conditional model")
    image = image_files.read_png(_PROJECT.value, image_shape(model))
    result = sampling.project_image(model, image, steps=steps, label=_LABEL.value)
    if out:
        gan_images.save_png(out, result["reconstruction"])
        provenance.stamp(
            out,
            "project",
            input_sha256=provenance_facts.file_sha256(_PROJECT.value),
            steps=steps,
            label=_LABEL.value,
        )
    if _LATENT_OUT.value:
        latent = result[sampling.control_space(model)]
        atomic.atomic_write_bytes(_LATENT_OUT.value, _npy_bytes(latent))
    psnr = result["psnr"]
    print(
        "PSNR: inf dB (pixel-exact reconstruction)"
        if psnr == float("inf")
        else f"PSNR: {psnr:.2f} dB"
    )


def _folder_jobs(mask_dir) -> list[tuple]:
    """(input, mask, output) paths for every *.png in --input_dir."""
    input_dir, out_dir = pathlib.Path(_INPUT_DIR.value), pathlib.Path(_OUT_DIR.value)
    if not input_dir.is_dir():
        raise RequestError(f"--input_dir={input_dir} is not a directory")
    if out_dir.resolve() == input_dir.resolve():
        raise app.UsageError(
            "--out_dir must differ from --input_dir (the inputs would be overwritten)"
        )
    inputs = sorted(
        path for path in input_dir.iterdir() if path.suffix.lower() == ".png" and path.is_file()
    )
    if not inputs:
        raise RequestError(f"no .png files in --input_dir={input_dir}")
    jobs = []
    for path in inputs:
        mask = _MASK.value
        if mask_dir is not None:
            mask = mask_dir / path.name
            if not mask.is_file():
                raise RequestError(
                    f"no mask for {path.name} in --mask_dir={mask_dir} (expected {mask})"
                )
        jobs.append((path, mask, out_dir / path.name))
    return jobs


def _transform(model, provenance: _Provenance) -> None:
    if _INPUT.value is not None and _INPUT_DIR.value is not None:
        raise app.UsageError("Give --input or --input_dir, not both")
    if _MASK.value is not None and _MASK_DIR.value is not None:
        raise app.UsageError("Give --mask or --mask_dir, not both")
    if _INPUT.value is not None:
        if not _present("out") or not _OUT.value:
            raise app.UsageError("--input needs --out (the output PNG)")
        if _OUT_DIR.value or _MASK_DIR.value:
            raise app.UsageError(
                "--out_dir and --mask_dir go with --input_dir; with --input give --out (and --mask)"
            )
    else:
        if not _OUT_DIR.value:
            raise app.UsageError("--input_dir needs --out_dir (where the outputs go)")
        if _present("out"):
            raise app.UsageError("--out goes with --input; with --input_dir give --out_dir")
    task, expected = task_name(model), transform.describe_transform_inputs(model)
    has_mask = _MASK.value is not None or _MASK_DIR.value is not None
    if transform.takes_mask(model) and not has_mask:
        raise RequestError(
            f"this {task} model needs a mask: give --mask=mask.png"
            f"{' (or --mask_dir=DIR)' if _INPUT_DIR.value else ''}; {expected}"
        )
    if has_mask and not transform.takes_mask(model):
        flag = "--mask" if _MASK.value is not None else "--mask_dir"
        raise RequestError(
            f"{flag} is for inpainting models; this {task} model takes only the image ({expected})"
        )
    if _INPUT.value is not None:
        jobs = [(_INPUT.value, _MASK.value, _OUT.value)]
    else:
        jobs = _folder_jobs(pathlib.Path(_MASK_DIR.value) if _MASK_DIR.value else None)
    # A batch at a time, each batch's outputs stamped before the next is read: outputs already
    # written when a bad file stops the run carry provenance too.
    written = 0
    for start in range(0, len(jobs), transform.TRANSFORM_BATCH):
        chunk = jobs[start : start + transform.TRANSFORM_BATCH]
        written += transform.transform_files(model, chunk)
        for image_path, mask_path, out_path in chunk:
            provenance.stamp(
                out_path,
                "serving_default",
                task=task,
                input_sha256=provenance_facts.file_sha256(image_path),
                mask_sha256=provenance_facts.file_sha256(mask_path) if mask_path else None,
            )
    logging.info(
        "Wrote %d image%s to %s",
        written,
        "" if written == 1 else "s",
        _OUT.value if _INPUT.value is not None else _OUT_DIR.value,
    )


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(array, np.float32))
    return buf.getvalue()


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not _MODEL_BASE_PATH.value:
        raise app.UsageError("--model_base_path is required")
    mode = _mode()
    try:
        stamper = _stamper()
        model = load_model(_MODEL_BASE_PATH.value, _VERSION.value)
        _check_model_kind(model, mode)
        {
            None: _sample,
            "interpolate": _interpolate,
            "edit": _edit,
            "project": _project,
            "transform": _transform,
        }[mode](model, _Provenance(model, stamper))
    except (RequestError, FileNotFoundError) as e:  # bad flags or files: no traceback
        sys.exit(f"pipeline.generate: {e}")


def console_main():
    app.run(main)


if __name__ == "__main__":
    console_main()
