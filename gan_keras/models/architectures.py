"""The one home for building networks: the config -> (generator, discriminator).

`model.architecture` names the sampling networks (registered below, found by name as in
big_vision); an image-to-image task (`task.name` != 'generate') always uses the pix2pix U-Net
and PatchGAN for its condition. Train, evaluate, export and fine-tuning all build through
`build_networks`, so a checkpoint written by one is read by the others.
"""

from gan_keras import tasks
from gan_keras.models import dcgan, pix2pix, stylegan2
from gan_keras.registry import Registry

# model.architecture -> the builder of its (generator, discriminator) from the `model` section.
ARCHITECTURES = Registry("model.architecture")
ARCHITECTURES.register("dcgan", dcgan.networks_from_config)
ARCHITECTURES.register("stylegan2", stylegan2.networks_from_config)
DEFAULT_ARCHITECTURE = "dcgan"


def architecture(model_config) -> str:
    """The config's model.architecture (configs written before it existed mean the DCGAN)."""
    return ARCHITECTURES.check(model_config.get("architecture", DEFAULT_ARCHITECTURE))


def build_networks(config, *, resolution: int, channels: int, num_classes: int = 0):
    """(generator, discriminator) the whole config describes: the task's pix2pix networks for
    an image-to-image task, else model.architecture's."""
    if tasks.is_image_to_image(config.task):
        return pix2pix.networks_from_config(config, resolution=resolution, channels=channels)
    build = ARCHITECTURES.get(architecture(config.model))
    return build(config.model, resolution=resolution, channels=channels, num_classes=num_classes)


def validate_architecture_config(config) -> None:
    """Validates model.architecture and the fields only that architecture reads."""
    if architecture(config.model) == "stylegan2":
        stylegan2.validate_config(config)
