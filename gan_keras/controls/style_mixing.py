"""Style mixing of generators with a mapping network (StyleGAN2): the grid
(`style_mix_images`) and the exported ``style_mix`` signature (`add_style_mix_endpoint`,
`style_model_info`)."""

import keras
import tensorflow as tf

from gan_keras import images as gan_images
from gan_keras.models import stylegan2

STYLE_MIX_SIGNATURE = "style_mix"


def style_mix_images(generator: keras.Model, z_coarse, z_fine, crossover, label=None):
    """The style-mixing grid [len(z_coarse) * len(z_fine), H, W, C] float, row-major: image
    (i, j) takes the styles of layers < crossover (ws rows, see gan_keras.models.stylegan2) from
    z_coarse[i] and the rest from z_fine[j]. `label`: one class for every image (or None)."""
    style = stylegan2.StyleParts(generator)
    crossover = tf.convert_to_tensor(crossover, tf.int32)
    checks = [
        tf.debugging.assert_non_negative(crossover, message="crossover must be >= 0"),
        tf.debugging.assert_less_equal(
            crossover, style.num_ws, message=f"crossover must be <= num_ws={style.num_ws}"
        ),
    ]
    rows, cols = tf.shape(z_coarse)[0], tf.shape(z_fine)[0]

    def map_all(z):
        labels = None if label is None else tf.fill([tf.shape(z)[0]], label)
        return style.broadcast(style.map(z, labels))

    with tf.control_dependencies(checks):
        ws_coarse = tf.repeat(map_all(z_coarse), cols, axis=0)  # row i, repeated per column
        ws_fine = tf.tile(map_all(z_fine), [rows, 1, 1])  # columns 0..cols-1, per row
        return style.synthesize(stylegan2.mix_styles(ws_coarse, ws_fine, crossover))


def style_model_info(generator: keras.Model, signatures: list[str]) -> dict:
    """What model_info.json adds for a generator with a mapping network (else nothing): the
    `style_mix` signature, `num_ws` (the crossover's range) and where truncation happens."""
    if not stylegan2.has_mapping_network(generator):
        return {}
    return {
        "signatures": [*signatures, STYLE_MIX_SIGNATURE],
        "num_ws": stylegan2.StyleParts(generator).num_ws,
        "truncation_space": "w",
    }


def add_style_mix_endpoint(archive, generator: keras.Model, latent_dim: int, num_classes: int):
    """Adds `style_mix` to a keras.export.ExportArchive of a generator with a mapping network.

    Inputs: ``seeds_coarse`` int64 [R], ``seeds_fine`` int64 [C], ``crossover`` int32 scalar in
    [0, num_ws] (and ``label`` int32 scalar for conditional models: every image's class).
    Outputs: ``images`` uint8 [R * C, H, W, C] and ``images_float``, row-major: image i * C + j
    takes the styles of layers < crossover from seed seeds_coarse[i] and the rest from
    seeds_fine[j], where a seed's latent is the ``sample`` signature's for that seed (so
    crossover = num_ws repeats ``sample(1, seeds_coarse[i])`` along row i and crossover = 0
    repeats ``sample(1, seeds_fine[j])`` down column j).
    """
    if not stylegan2.has_mapping_network(generator):
        return

    def seed_latents(seeds):
        # Exactly the `sample` signature's latent of each seed: stateless_normal(seed=[s, 0]).
        return tf.map_fn(
            lambda s: tf.random.stateless_normal([latent_dim], tf.stack([s, tf.zeros_like(s)])),
            seeds,
            fn_output_signature=tf.float32,
        )

    def grid(seeds_coarse, seeds_fine, crossover, label=None):
        images = style_mix_images(
            generator, seed_latents(seeds_coarse), seed_latents(seeds_fine), crossover, label
        )
        images = tf.cast(images, tf.float32)
        return {"images": gan_images.to_uint8_tensor(images), "images_float": images}

    specs = [
        tf.TensorSpec([None], tf.int64, name="seeds_coarse"),
        tf.TensorSpec([None], tf.int64, name="seeds_fine"),
        tf.TensorSpec([], tf.int32, name="crossover"),
    ]
    if num_classes:

        def style_mix(seeds_coarse, seeds_fine, crossover, label):
            checks = [
                tf.debugging.assert_non_negative(label, message="label must be >= 0"),
                tf.debugging.assert_less(
                    label, num_classes, message=f"label must be < num_classes={num_classes}"
                ),
            ]
            with tf.control_dependencies(checks):
                label = tf.identity(label)
            return grid(seeds_coarse, seeds_fine, crossover, label)

        specs.append(tf.TensorSpec([], tf.int32, name="label"))
    else:

        def style_mix(seeds_coarse, seeds_fine, crossover):
            return grid(seeds_coarse, seeds_fine, crossover)

    archive.add_endpoint(STYLE_MIX_SIGNATURE, style_mix, input_signature=specs)
