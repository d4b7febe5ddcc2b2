"""The style-mixing figure of a trained StyleGAN2 workdir (StyleGAN's Figure 3 layout).

    python -m benchmarks.style_mixing_grid --workdir=runs/sg2_fmnist \
        --config=configs/stylegan2_fashion_mnist.py --out=benchmarks/results/stylegan2/

Top row: the samples whose fine styles are used (seeds_fine); left column: the samples whose
coarse styles are used (seeds_coarse); cell (i, j): coarse styles (ws rows < crossover) of row
i's seed with fine styles of column j's seed, through `style_mixing.style_mix_images`, the same
function as the export's `style_mix` signature. One PNG per crossover.
"""

import pathlib

import numpy as np
import tensorflow as tf
from absl import app, flags
from ml_collections import config_flags

from gan_keras import images as gan_images
from gan_keras.controls import style_mixing
from gan_keras.models import stylegan2
from pipeline import checkpoints

_CONFIG = config_flags.DEFINE_config_file("config", "configs/stylegan2_fashion_mnist.py")
_WORKDIR = flags.DEFINE_string("workdir", "runs/sg2_fmnist", "A trained stylegan2 workdir.")
_OUT = flags.DEFINE_string("out", "benchmarks/results/stylegan2", "Output directory.")
_COARSE = flags.DEFINE_list("seeds_coarse", ["1", "2", "3", "4", "5"], "Row seeds.")
_FINE = flags.DEFINE_list("seeds_fine", ["10", "11", "12", "13", "14", "15"], "Column seeds.")
_CROSSOVERS = flags.DEFINE_list("crossovers", ["2", "4"], "ws rows taken from the row seed.")


def _latents(seeds, latent_dim):
    # The export's `sample` latent of each seed.
    return tf.stack([tf.random.stateless_normal([latent_dim], [int(s), 0]) for s in seeds], axis=0)


def main(argv):
    del argv
    config = _CONFIG.value
    generator = checkpoints.load_generator(config, _WORKDIR.value)
    latent_dim = config.model.latent_dim
    z_coarse, z_fine = _latents(_COARSE.value, latent_dim), _latents(_FINE.value, latent_dim)
    sources_coarse = generator(z_coarse, training=False).numpy()
    sources_fine = generator(z_fine, training=False).numpy()
    blank = np.full_like(sources_fine[:1], 1.0)  # white corner cell
    rows, cols = len(z_coarse), len(z_fine)
    out = pathlib.Path(_OUT.value)
    num_ws = stylegan2.StyleParts(generator).num_ws
    for crossover in (int(c) for c in _CROSSOVERS.value):
        mixed = style_mixing.style_mix_images(generator, z_coarse, z_fine, crossover).numpy()
        cells = [blank, sources_fine]
        for i in range(rows):
            cells += [sources_coarse[i : i + 1], mixed[i * cols : (i + 1) * cols]]
        grid = gan_images.make_grid(gan_images.to_uint8(np.concatenate(cells)), rows=rows + 1)
        path = out / f"style_mixing_crossover{crossover}_of{num_ws}.png"
        gan_images.save_png(path, gan_images.upscale_for_viewing(grid))
        print(path)


if __name__ == "__main__":
    app.run(main)
