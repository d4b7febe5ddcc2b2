r"""Writes images from an exported generator, using its ``sample`` signature.

    python -m pipeline.generate --model_base_path=<workdir>/export/generator \
        --num=64 --seed=0 --out=grid.png [--label=3] [--out_dir=DIR] [--version=N]

The same seed (and version) always gives the same images. ``--out_dir`` also
writes one PNG per image (``sample_00000.png``, ...). The library behind it is
gan_keras.sampling.
"""


from absl import app, flags

from gan_keras import sampling

_MODEL_BASE_PATH = flags.DEFINE_string("model_base_path", None,
                                       "Directory with integer SavedModel versions.")
_VERSION = flags.DEFINE_integer("version", None, "Version to use (default: the highest).")
_NUM = flags.DEFINE_integer("num", 64, "Number of images.")
_SEED = flags.DEFINE_integer("seed", 0, "Sampling seed; the same seed gives the same images.")
_LABEL = flags.DEFINE_integer("label", None,
                              "Class for conditional models (default: random labels).")
_OUT = flags.DEFINE_string("out", "grid.png", "Grid PNG to write ('' for none).")
_OUT_DIR = flags.DEFINE_string("out_dir", None, "Also write one PNG per image into this directory.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not _MODEL_BASE_PATH.value:
        raise app.UsageError("--model_base_path is required")
    if not _OUT.value and not _OUT_DIR.value:
        raise app.UsageError("Nothing to write: give --out and/or --out_dir")
    sampling.generate_to_files(_MODEL_BASE_PATH.value, num=_NUM.value, seed=_SEED.value,
                               label=_LABEL.value, version=_VERSION.value, out=_OUT.value or None,
                               out_dir=_OUT_DIR.value)


def console_main():
    app.run(main)


if __name__ == "__main__":
    console_main()
