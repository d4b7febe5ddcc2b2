"""Your own images: one config for a folder of pictures, its recipe chosen from the data.

    python -m pipeline.run --config=configs/auto.py --workdir=runs/mine \
        --config.data.source=folder:/path/to/images

Images in sub-folders are labelled by folder (for the judge; the generator is unconditional).
`data.channels` is chosen from the images before ingest (1 when every image is stored
greyscale, else 3); every other field below that is None is chosen after ingest by
pipeline.recipe from what the ingest stage found (train image count, channels, classes). The
run logs each choice and its reason, writes them to <workdir>/recipe.json, and any of them set
on the command line (e.g. --config.train.steps=2000) is kept as given.
"""

from ml_collections import config_dict

from configs import fashion_mnist

# The fields the recipe chooses from the data (pipeline.recipe._rules); the rest is the demo's.
CHOSEN = {
    "model": ("network_resolution", "g_width", "d_width"),
    "train": ("ada_target", "steps", "ema_half_life_images", "ema_rampup"),
    "evaluate": ("classifier_min_steps", "num_samples"),
}


def get_config():
    config = fashion_mnist.get_config()
    config.data.source = ""  # required: --config.data.source=folder:DIR (or tfds:, idx:)
    config.data.resolution = 32
    # Chosen before ingest from the images (pipeline.ingest.channels): 1 for a folder stored
    # greyscale, else 3.
    config.data.channels = config_dict.placeholder(int)
    config.data.label_names = ""
    config.data.eval_fraction = 0.2
    config.evaluate.classifier_batch_size = 64
    config.train.recipe = "auto"
    for section, fields in CHOSEN.items():
        for field in fields:
            value = config[section][field]
            config[section][field] = config_dict.placeholder(type(value))
    return config
