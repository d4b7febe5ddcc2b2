"""Per-example adversarial losses, all computed from D's logits.

Working from logits (softplus rather than log of a sigmoid) keeps the losses
finite when D saturates. Each function returns per-example losses [B]; the
caller averages them over the *global* batch (`tf.nn.compute_average_loss`).

`LOSSES` maps each `train.loss` name to its (discriminator, generator) pair;
the config validator and the model check names against that one table.
"""

import tensorflow as tf

from gan_keras.registry import Registry

LOSSES = Registry("train.loss")


def _flat(logits):
    return tf.reshape(logits, [-1])


def _d_cross_entropy(real_logits, fake_logits):
    # -log D(x) - log(1 - D(G(z))) with D = sigmoid(logit).
    return tf.nn.softplus(-real_logits) + tf.nn.softplus(fake_logits)


def _g_non_saturating(fake_logits):
    # -log D(G(z)).
    return tf.nn.softplus(-fake_logits)


def _g_minimax(fake_logits):
    # log(1 - D(G(z))), the value function as written; G minimises it.
    return -tf.nn.softplus(fake_logits)


def _d_hinge(real_logits, fake_logits):
    return tf.nn.relu(1.0 - real_logits) + tf.nn.relu(1.0 + fake_logits)


def _d_wasserstein(real_logits, fake_logits):
    return fake_logits - real_logits


def _g_critic(fake_logits):
    # Hinge and WGAN generators both maximise the critic's score.
    return -fake_logits


def _d_least_squares(real_logits, fake_logits):
    return 0.5 * tf.square(real_logits - 1.0) + 0.5 * tf.square(fake_logits)


def _g_least_squares(fake_logits):
    return 0.5 * tf.square(fake_logits - 1.0)


LOSSES.register("non_saturating", (_d_cross_entropy, _g_non_saturating))
LOSSES.register("minimax", (_d_cross_entropy, _g_minimax))
LOSSES.register("hinge", (_d_hinge, _g_critic))
LOSSES.register("wgan_gp", (_d_wasserstein, _g_critic))
LOSSES.register("least_squares", (_d_least_squares, _g_least_squares))


def discriminator_loss(name: str, real_logits, fake_logits):
    d_loss, _ = LOSSES.get(name)
    return d_loss(_flat(real_logits), _flat(fake_logits))


def generator_loss(name: str, fake_logits):
    _, g_loss = LOSSES.get(name)
    return g_loss(_flat(fake_logits))
