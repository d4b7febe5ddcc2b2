"""The demo (configs/fashion_mnist.py) with the StyleGAN2 generator (gan_keras.models.stylegan2).

Everything else stays the demo's, so a comparison isolates the generator: the same DCGAN
discriminator (BatchNorm), optimiser and EMA. Added, as in StyleGAN2 at this small scale:
a 4-layer mapping network to a 128-d w, style mixing (train.style_mixing_prob, 0.9 by
default) and lazy R1 every 16 steps. Path-length regularisation stays off (train.pl_weight=0):
it costs a second synthesis pass with double backpropagation, too much for 2 CPU cores.
"""

from configs import fashion_mnist


def get_config():
    config = fashion_mnist.get_config()
    config.model.architecture = "stylegan2"
    # 28x28 data through the 32x32 synthesis (fashion_mnist.py already builds D for 32x32).
    config.model.network_resolution = 32
    config.model.mapping_layers = 4
    config.model.w_dim = 128
    config.model.g_width = 16
    config.train.r1_gamma = 0.1
    config.train.r1_every = 16
    return config
