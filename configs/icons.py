"""Unconditional generation of 32x32 colour icons: the demo's DCGAN recipe
(configs/fashion_mnist.py) on KDE's Oxygen icon theme (LGPL-3+), a second colour dataset
for the quality benchmark (README, "Time to quality"), of another kind than the emoji:

    bash scripts/install_icons.sh      # 1,253 icons in 6 context folders -> data/oxygen-icons
    python -m pipeline.run --config=configs/icons.py --workdir=runs/icons
    python -m benchmarks.quality --config=configs/icons.py ...

Debian's oxygen-icon-theme 5:5.103.0-1, one PNG per distinct icon (64, 48 or 32 px, RGBA
composited over white), labelled by icon context: actions 627, apps 248, mimetypes 159,
status 116, devices 58, places 45. A small dataset (TODO train and TODO eval images), so a
generator sees each image many times (3,500 steps x 64 = 224k images, ~TODO epochs).
"""

import pathlib

from configs import fashion_mnist

DATA_DIR = pathlib.Path(__file__).resolve().parents[1] / "data" / "oxygen-icons"


def use_icons_data(config) -> None:
    """The data and judge fields every Oxygen icon config shares."""
    config.data.source = f"folder:{DATA_DIR}"
    config.data.resolution = 32
    config.data.channels = 3
    config.data.label_names = ""  # the context folders
    # A fifth held out: the real side of every score rests on more than a handful.
    config.data.eval_fraction = 0.2
    config.data.max_reject_fraction = 0.0
    config.evaluate.classifier_batch_size = 64
    config.evaluate.classifier_min_steps = 1000


def get_config():
    config = fashion_mnist.get_config()
    use_icons_data(config)
    # The demo's 32x32 DCGAN geometry, now at the data's own size (no padding).
    config.model.network_resolution = 32
    config.evaluate.num_samples = 1000
    return config
