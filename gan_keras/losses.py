"""Per-example adversarial losses, all computed from D's logits.

Working from logits (softplus rather than log of a sigmoid) keeps the losses
finite when D saturates. Each function returns per-example losses [B]; the
caller averages them over the *global* batch (`tf.nn.compute_average_loss`).
"""

import tensorflow as tf

LOSSES = ("non_saturating", "minimax", "hinge", "wgan_gp", "least_squares")


def discriminator_loss(name: str, real_logits, fake_logits):
    real_logits = tf.reshape(real_logits, [-1])
    fake_logits = tf.reshape(fake_logits, [-1])
    if name in ("non_saturating", "minimax"):
        # -log D(x) - log(1 - D(G(z))) with D = sigmoid(logit).
        return tf.nn.softplus(-real_logits) + tf.nn.softplus(fake_logits)
    if name == "hinge":
        return tf.nn.relu(1.0 - real_logits) + tf.nn.relu(1.0 + fake_logits)
    if name == "wgan_gp":
        return fake_logits - real_logits
    if name == "least_squares":
        return 0.5 * tf.square(real_logits - 1.0) + 0.5 * tf.square(fake_logits)
    raise ValueError(f"train.loss must be one of {LOSSES}, got {name!r}")


def generator_loss(name: str, fake_logits):
    fake_logits = tf.reshape(fake_logits, [-1])
    if name == "non_saturating":
        # -log D(G(z)).
        return tf.nn.softplus(-fake_logits)
    if name == "minimax":
        # log(1 - D(G(z))), the value function as written; G minimises it.
        return -tf.nn.softplus(fake_logits)
    if name in ("hinge", "wgan_gp"):
        return -fake_logits
    if name == "least_squares":
        return 0.5 * tf.square(fake_logits - 1.0)
    raise ValueError(f"train.loss must be one of {LOSSES}, got {name!r}")
