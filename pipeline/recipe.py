"""The automatic recipe (`train.recipe='auto'`, configs/auto.py): a training recipe chosen
from what the ingest stage found in the user's folder, as StyleGAN2-ADA's `--cfg=auto` does.

configs/auto.py leaves the fields the recipe chooses unset (ml_collections placeholders,
None); any of them set on the command line is kept as given. After the ingest stage, the
runner calls `resolve(config, stats)`, which fills each unset field from the ingest
statistics (train image count, resolution, channels, classes) and says why, and every later
stage (train, evaluate, export, in this run or another) sees the same resolved config: the
rule is a pure function of the statistics, so caching and fingerprints work as for a
written config. Before ingest, `resolve(config, PROVISIONAL_STATS)` lets every stage validate
the user's overrides before any work starts.

Before ingest, `resolve_data` chooses the channels (`data.channels`) from the images
themselves (pipeline.ingest.channels: 1 for a folder stored greyscale, else 3), since ingest
writes them.

The rule. Everything that does not depend on the data is the demo's recipe
(configs/fashion_mnist.py: the 32-wide DCGAN, batch 64, learning rate 1.6e-3, the EMA
generator). What depends on the data, and which data each choice was measured on
(docs/your-own-images.md):
- network geometry: 28x28 data through the 32x32 networks (Fashion-MNIST), else the data's own
  size; at 32x32 a colour folder gets G 64 wide and D 32 (Noto Emoji), grey images the demo's
  32 and 32 (Fashion-MNIST); 64 and 64 from 64x64 (not measured at 64x64: a guess, logged as one);
- augmentation: ADA (train.ada_target=0.6) for a run of more than 250 passes over the folder
  (its train.steps as set, else the recipe's), none below: at 224k images ADA was no better on
  Noto Emoji and Oxygen icons, but by 672k images D memorised the emoji without it and the FD
  rose 65% from its best, while ADA held; the health monitor names ADA when D memorises;
- the EMA generator: for a colour folder at 32x32 a half-life of a tenth of the images seen, up
  to 30k images (Noto Emoji and Oxygen icons at 224k images, 3 seeds each), else the demo's
  twentieth, up to 10k (Fashion-MNIST);
- length: 224k images (3,500 steps of 64), more for a folder so large that this is under 3
  passes; in-training evaluation every 500 steps, and the export takes the best checkpoint,
  so a run that peaks early is not lost to a later decline;
- judge and evaluation: at least 1,000 classifier steps for folders under 10k images (Noto
  Emoji: 500 steps under-trained it), as many samples as the eval split holds (500-5,000).
"""

import dataclasses

from ml_collections import config_dict

from gan_keras.data import records
from gan_keras.storage import atomic, filesystem
from gan_keras.training import ada
from pipeline.ingest import channels

AUTO = "auto"
RECIPE_FILE = "recipe.json"
# What `resolve` assumes before the ingest stage has run (for validation only).
PROVISIONAL_STATS = {"splits": {"train": {"count": 1000}, "eval": {"count": 250}}, "channels": 3}

JUDGE_SMALL_IMAGES = 10_000
TARGET_IMAGES = 224_000
MIN_EPOCHS = 3
# ADA's overfitting target (StyleGAN2-ADA's 0.6) and the run length, in passes over the train
# images, from which the recipe turns it on (measured: docs/your-own-images.md).
ADA_TARGET = ada.DEFAULT_TARGET
ADA_MIN_PASSES = ada.PAYS_OFF_PASSES
# The EMA generator's half-life and ramp-up (the half-life is ramp-up x images seen until it
# reaches the half-life): configs/fashion_mnist.py's, and the colour folders' (measured:
# docs/your-own-images.md).
DEMO_EMA = (10_000.0, 0.05)
COLOUR_EMA = (30_000.0, 0.1)


@dataclasses.dataclass(frozen=True)
class Choice:
    field: str
    value: object
    reason: str
    overridden: bool  # set by the user: kept as given


def is_auto(config) -> bool:
    return config.train.get("recipe", "") == AUTO


def unset_fields(config) -> list[str]:
    """The `section.field` names still None (placeholders the recipe fills)."""
    out = []
    for section in ("model", "train", "evaluate"):
        for key, value in config[section].items():
            if value is None:
                out.append(f"{section}.{key}")
    return out


def _rules(config, stats) -> dict[str, tuple[object, str]]:
    """field -> (value, reason) for every field the recipe chooses."""
    n = int(stats["splits"]["train"]["count"])
    n_eval = int(stats["splits"].get("eval", {}).get("count", 0))
    resolution = int(config.data.resolution)
    rules = {}
    net_res = 32 if resolution == 28 else 0
    rules["model.network_resolution"] = (
        net_res,
        "28x28 data through the 32x32 DCGAN (the demo's geometry)"
        if net_res
        else f"the DCGAN built for the data's {resolution}x{resolution}",
    )
    channels = int(stats.get("channels", config.data.channels))
    if resolution >= 64:
        g_width = d_width = 64
        why = f"twice the demo's widths at {resolution}x{resolution} (not measured: a guess)"
        rules["model.g_width"] = (g_width, why)
        rules["model.d_width"] = (d_width, why)
    elif channels == 3:
        # Noto Emoji, 32x32, 224k images, 1 seed, one judge (docs/your-own-images.md): the
        # article's DCGAN 197.6 / 73.1 / 43.5 / 40.2 at 56k / 112k / 168k / 224k images; G 64 and
        # D 32: 77.7 / 25.2 / 19.8 / 14.6 (0.36-0.46x); both 64: 55.2 / 22.1 / 13.5 / 14.4,
        # training half as many images per second. G 64 and D 32 reach both-64's FD by 224k
        # at about twice its speed; the demo's 32 and 32 scored 0.71x the DCGAN at 224k.
        rules["model.g_width"] = (
            64,
            "a colour folder: G twice the demo's width (Noto Emoji, 224k images, one seed and "
            "judge: FD 0.36x the article's DCGAN, against 0.71x for the demo's 32)",
        )
        rules["model.d_width"] = (
            32,
            "the demo's D: both 64 scored alike at 224k images on Noto Emoji at half the speed",
        )
    else:
        why = f"the demo's widths for {channels}-channel images (Fashion-MNIST's recipe)"
        rules["model.g_width"] = (32, why)
        rules["model.d_width"] = (32, why)
    if channels == 3 and resolution < 64:
        ema = COLOUR_EMA
        why = (
            "a colour folder: G averaged over a tenth of the images seen (the demo's twentieth), "
            "up to {:,.0f} images (224k images, 3 seeds each: Noto Emoji FD 13.22 against 14.06, "
            "lower on every seed; Oxygen icons 1.01 against 1.07, near the judge's floor)"
        )
    else:
        ema = DEMO_EMA
        why = "the demo's: a twentieth of the images seen, up to {:,.0f} images (Fashion-MNIST)"
    rules["train.ema_half_life_images"] = (ema[0], why.format(ema[0]))
    rules["train.ema_rampup"] = (ema[1], why.format(ema[0]))
    steps = max(TARGET_IMAGES, MIN_EPOCHS * n) // 64
    steps = -(-steps // 500) * 500
    rules["train.steps"] = (
        steps,
        f"{steps * 64:,} images ({steps * 64 / max(n, 1):.0f} passes over {n:,} images)",
    )
    # ADA by the run's passes over the folder (its length as the user set it, else the recipe's).
    # Noto Emoji, 672k images, 1 seed (docs/your-own-images.md): without augmentation r_t rose
    # to 0.87 by 224k images (146 passes) and 0.96 by 672k; FD was best at 336k (13.6, 219
    # passes), then rose to 22.4 with recall falling 0.73 -> 0.64. ADA (target 0.6) held r_t at
    # 0.62 with p rising to 0.32, and ended at 15.9 with recall 0.79. Oxygen icons, the same: no
    # augmentation best at 448k (1.15, 439 passes), 2.24 and recall 0.72 by 672k; ADA 1.87,
    # recall 0.91. At 224k images ADA was no better on either set, so it starts above 250 passes.
    planned = config.train.steps if config.train.steps is not None else steps
    passes = int(planned) * int(config.train.batch_size) / max(n, 1)
    if passes > ADA_MIN_PASSES:
        rules["train.ada_target"] = (
            ADA_TARGET,
            f"ADA (target r_t {ADA_TARGET}): {passes:.0f} passes over {n:,} images is past the "
            f"{ADA_MIN_PASSES} where D memorised Noto Emoji without augmentation",
        )
    else:
        rules["train.ada_target"] = (
            0.0,
            f"no augmentation for {passes:.0f} passes over {n:,} images (ADA starts above "
            f"{ADA_MIN_PASSES}: below, it was no better on two colour folders); the health "
            "monitor suggests it if D memorises them",
        )
    judge_steps = 1000 if n < JUDGE_SMALL_IMAGES else 0
    rules["evaluate.classifier_min_steps"] = (
        judge_steps,
        f"{n:,} images: the judge trains for at least 1,000 steps"
        if judge_steps
        else "the judge trains for its epochs",
    )
    samples = max(500, min(5000, n_eval)) if n_eval else 1000
    rules["evaluate.num_samples"] = (samples, f"as many samples as the {n_eval:,} eval images")
    return rules


def choices_for(config, stats) -> dict[str, object]:
    """field -> value the recipe would choose for `config`'s data (benchmarks.quality's `auto`
    row applies them all to a written config)."""
    return {field: value for field, (value, _) in _rules(config, stats).items()}


def resolve(config, stats) -> tuple[object, list[Choice]]:
    """(a copy of `config` with every unset field chosen, the choices with their reasons)."""
    resolved = config_dict.ConfigDict(config.to_dict())
    choices = []
    for field, (value, reason) in _rules(config, stats).items():
        section, key = field.split(".")
        if key not in config[section]:
            continue
        given = config[section][key]
        if given is None:
            resolved[section][key] = value
            choices.append(Choice(field, value, reason, overridden=False))
        else:
            choices.append(Choice(field, given, "set in the config or on the command line", True))
    missing = unset_fields(resolved)
    if missing:
        raise ValueError(
            f"train.recipe='auto' has no rule for {', '.join(missing)}: set them in the config"
        )
    return resolved, choices


def resolve_data(config) -> tuple[object, list[Choice]]:
    """(a copy of `config` with `data.channels` chosen from the source's images when it is unset,
    the choice): made before ingest, which writes that many channels (pipeline.ingest.channels)."""
    if config.data.get("channels", 0) is not None:
        return config, []
    value, reason = channels.source_channels(config.data)
    resolved = config_dict.ConfigDict(config.to_dict())
    resolved.data.channels = value
    return resolved, [Choice("data.channels", value, reason, overridden=False)]


def read_stats(ingest_dir) -> dict:
    return atomic.read_json(filesystem.path(ingest_dir) / records.STATS_FILE)


def log_lines(choices: list[Choice]) -> list[str]:
    return [
        f"recipe: {c.field}={c.value!r}  ({'kept: ' if c.overridden else ''}{c.reason})"
        for c in choices
    ]


def write_record(path, choices: list[Choice]) -> None:
    """The choices and reasons, as JSON beside the run (atomically)."""
    atomic.atomic_write_json(
        path,
        {"recipe": AUTO, "choices": [dataclasses.asdict(c) for c in choices]},
    )
