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

The same seed (and version) always gives the same images. ``--out_dir`` also
writes one PNG per image (``sample_00000.png``, ...). The library behind it is
gan_keras.sampling, which the model server's endpoints share.
"""

import io
import sys

import numpy as np
from absl import app, flags

from gan_keras import images as gan_images
from gan_keras import io_utils, sampling

_MODEL_BASE_PATH = flags.DEFINE_string("model_base_path", None,
                                       "Directory with integer SavedModel versions.")
_VERSION = flags.DEFINE_integer("version", None, "Version to use (default: the highest).")
_NUM = flags.DEFINE_integer("num", 64, "Number of images (default 64; 4 rows with --edit).")
_SEED = flags.DEFINE_integer("seed", 0, "Sampling seed; the same seed gives the same images.")
_LABEL = flags.DEFINE_integer(
    "label", None, "Class for conditional models (default: random labels). Required with "
    "--project, and with --interpolate, where it is the first image's class.")
_OUT = flags.DEFINE_string(
    "out", "grid.png", "Image to write ('' for none): the grid; with --interpolate a GIF if it "
    "ends in .gif, else a PNG strip; with --project the reconstruction (only if given).")
_OUT_DIR = flags.DEFINE_string("out_dir", None, "Also write one PNG per image into this directory.")
_TRUNCATION = flags.DEFINE_float(
    "truncation", None, "Truncation psi in [0, 1] for the latents (1: plain samples, 0: the "
    "mean latent). With plain sampling or --edit.")
_INTERPOLATE = flags.DEFINE_string(
    "interpolate", None, "A,B: images along the latent path from seed A's sample to seed B's.")
_LABEL_B = flags.DEFINE_integer("label_b", None,
                                "With --interpolate: the last image's class (default: --label).")
_STEPS = flags.DEFINE_integer(
    "steps", None, f"Images along the walk with --interpolate (default "
    f"{sampling.DEFAULT_INTERPOLATION_STEPS}, >= 2); optimisation steps with --project "
    f"(default {sampling.DEFAULT_PROJECT_STEPS}).")
_DURATION_MS = flags.DEFINE_integer("duration_ms", sampling.DEFAULT_GIF_FRAME_MS,
                                    "Milliseconds per GIF frame with --interpolate.")
_PROJECT = flags.DEFINE_string(
    "project", None, "A PNG to fit a latent to; it must have the model's exact image shape "
    "(height, width, channels): nothing is resized or converted.")
_LATENT_OUT = flags.DEFINE_string("latent_out", None,
                                  "With --project: .npy file for the fitted latent [latent_dim].")
_EDIT = flags.DEFINE_string("edit", None, "Edit direction, by name (directions.json) or index.")
_STRENGTH = flags.DEFINE_float("strength", None, "With --edit: one strength.")
_STRENGTHS = flags.DEFINE_string(
    "strengths", None, "With --edit: comma-separated strengths (default "
    f"{','.join(f'{s:g}' for s in sampling.DEFAULT_EDIT_STRENGTHS)}).")

_MODES = ("interpolate", "project", "edit")
# Flags that only one mode reads (or a subset of modes), to reject them elsewhere.
_ONLY_IN = {
    "label_b": ("interpolate",), "duration_ms": ("interpolate",),
    "steps": ("interpolate", "project"), "latent_out": ("project",),
    "strength": ("edit",), "strengths": ("edit",), "truncation": (None, "edit"),
    "out_dir": (None, "interpolate", "edit"),
}


def _present(name: str) -> bool:
    return flags.FLAGS[name].present


def _mode() -> str | None:
    modes = [m for m in _MODES if flags.FLAGS[m].value is not None]
    if len(modes) > 1:
        raise app.UsageError(f"Give at most one of --{', --'.join(_MODES)}; got --"
                             f"{' and --'.join(modes)}")
    mode = modes[0] if modes else None
    for name, modes_ok in _ONLY_IN.items():
        if _present(name) and mode not in modes_ok:
            where = " or ".join("plain sampling" if m is None else f"--{m}" for m in modes_ok)
            raise app.UsageError(f"--{name} applies only with {where}")
    return mode


def _sample(model) -> None:
    if not _OUT.value and not _OUT_DIR.value:
        raise app.UsageError("Nothing to write: give --out and/or --out_dir")
    images = sampling.sample_images(model, num=_NUM.value, seed=_SEED.value, label=_LABEL.value,
                                    truncation=_TRUNCATION.value)
    sampling.write_images(images, out=_OUT.value or None, out_dir=_OUT_DIR.value)


def _interpolate(model) -> None:
    if not _OUT.value and not _OUT_DIR.value:
        raise app.UsageError("Nothing to write: give --out and/or --out_dir")
    seed_a, seed_b = sampling.parse_int_pair(_INTERPOLATE.value, "--interpolate")
    if _LABEL.value is None and sampling.takes_label(model, "interpolate"):
        raise app.UsageError("--label is required with --interpolate on a conditional model "
                             "(the first image's class; --label_b the last's, default --label)")
    label_b = _LABEL_B.value if _LABEL_B.value is not None else _LABEL.value
    if _DURATION_MS.value < 10:
        raise app.UsageError(f"--duration_ms must be >= 10, got {_DURATION_MS.value}")
    steps = sampling.DEFAULT_INTERPOLATION_STEPS if _STEPS.value is None else _STEPS.value
    images = sampling.interpolate_images(model, seed_a=seed_a, seed_b=seed_b, steps=steps,
                                         label_a=_LABEL.value, label_b=label_b)
    if _OUT.value:
        sampling.write_image_file(_OUT.value, images, duration_ms=_DURATION_MS.value)
    sampling.write_images(images, out_dir=_OUT_DIR.value)


def _edit(model) -> None:
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
    images = sampling.edit_images(model, num=num, seed=_SEED.value, direction=direction,
                                  strengths=strengths, label=_LABEL.value,
                                  truncation=_TRUNCATION.value)
    if _OUT.value:
        gan_images.save_png(_OUT.value, sampling.edit_grid(images))
    sampling.write_images(images.reshape((-1, *images.shape[2:])), out_dir=_OUT_DIR.value)


def _project(model) -> None:
    out = _OUT.value if _present("out") else None
    if not out and not _LATENT_OUT.value:
        raise app.UsageError("Nothing to write: give --out (the reconstruction) and/or "
                             "--latent_out (the latent, .npy)")
    steps = sampling.DEFAULT_PROJECT_STEPS if _STEPS.value is None else _STEPS.value
    if _LABEL.value is None and sampling.takes_label(model, "project"):
        raise app.UsageError("--label is required with --project on a conditional model")
    image = sampling.read_png(_PROJECT.value, sampling.image_shape(model))
    result = sampling.project_image(model, image, steps=steps, label=_LABEL.value)
    if out:
        gan_images.save_png(out, result["reconstruction"])
    if _LATENT_OUT.value:
        io_utils.atomic_write_bytes(_LATENT_OUT.value, _npy_bytes(result["z"]))
    psnr = result["psnr"]
    print("PSNR: inf dB (pixel-exact reconstruction)" if psnr == float("inf")
          else f"PSNR: {psnr:.2f} dB")


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
        model = sampling.load_model(_MODEL_BASE_PATH.value, _VERSION.value)
        {None: _sample, "interpolate": _interpolate, "edit": _edit,
         "project": _project}[mode](model)
    except (sampling.RequestError, FileNotFoundError) as e:  # bad flags or files: no traceback
        sys.exit(f"pipeline.generate: {e}")


def console_main():
    app.run(main)


if __name__ == "__main__":
    console_main()
