"""What the serving benchmarks share: the demo-shaped generator they serve when no
--model_base_path is given, and the nearest-rank percentile they report latencies with.

The generator is untrained (seeded weights): the benchmarks time the server, the wire and the
browser, for which the demo's layer shapes matter and its weights do not.
"""

import pathlib


def demo_generator(latent_dim: int = 100):
    """configs/fashion_mnist.py's generator shape (28x28 grey), seeded, untrained."""
    import keras

    keras.utils.set_random_seed(0)
    z = keras.Input((latent_dim,))
    h = keras.layers.Dense(7 * 7 * 128, use_bias=False)(z)
    h = keras.layers.ReLU()(keras.layers.BatchNormalization()(h))
    h = keras.layers.Reshape((7, 7, 128))(h)
    h = keras.layers.Conv2DTranspose(64, 4, strides=2, padding="same", use_bias=False)(h)
    h = keras.layers.ReLU()(keras.layers.BatchNormalization()(h))
    out = keras.layers.Conv2DTranspose(1, 4, strides=2, padding="same", activation="tanh")(h)
    return keras.Model(z, out)


def export_demo_generator(root: pathlib.Path, latent_dim: int = 100) -> pathlib.Path:
    """Exports demo_generator() as a sampling model under root/generator; returns that base."""
    from gan_keras.export import sampling_model

    base = pathlib.Path(root) / "generator"
    sampling_model.export_generator(demo_generator(latent_dim), base, latent_dim=latent_dim)
    return base


def percentile(values, q: float):
    """The nearest-rank q-th percentile of `values` (one of the values, never interpolated)."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]
