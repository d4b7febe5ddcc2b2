"""The rows benchmarks.quality can train, each a config the benchmark's --config file starts:

- `article_dcgan`: the article's DCGAN (`benchmarks.article_dcgan`, at the data's size and
  channels), the outside reference every other row is compared with;
- `previous_default`: the demo config before the benchmark existed (as overrides:
  Fashion-MNIST's recipe, on any config's data);
- `default`: the `--config` file as it is;
- named candidates (`CANDIDATES` below, or `--candidate=name:field=value,...`), overrides of
  the `--config` file;
- `auto`: what configs/auto.py's recipe (pipeline.recipe) chooses for the benchmark's data and
  images budget, and `auto+NAME`, that with candidate NAME's overrides on top.
"""

import copy
import dataclasses

from pipeline import recipe

DEFAULT_CONFIG = "configs/fashion_mnist.py"

# The demo config as it was before this benchmark (configs/fashion_mnist.py at
# commit 0b5684b): 28x28 DCGAN, widths 32, latent 64. Its EMA was a fixed
# 0.999 decay; its half-life in images at batch 64 is 64 * ln(0.5) / ln(0.999).
PREVIOUS_DEFAULT = {
    "model.network_resolution": 0,
    "model.latent_dim": 64,
    "model.g_width": 32,
    "model.d_width": 32,
    "model.batch_norm_momentum": 0.99,
    "train.batch_size": 64,
    "train.g_learning_rate": 2e-4,
    "train.d_learning_rate": 2e-4,
    "train.beta_1": 0.5,
    "train.beta_2": 0.999,
    "train.ema_half_life_images": 44_339.0,
    "train.ema_rampup": 0.0,
}

# Recipes tried while choosing the default (overrides of configs/fashion_mnist.py).
# (The one-seed screening runs are listed in the README; this one has three seeds.)
CANDIDATES: dict[str, dict] = {
    "lr_8e-4": {"train.g_learning_rate": 8e-4, "train.d_learning_rate": 8e-4},
    # Your own images (#28): augmentation and learning rate on small colour folders.
    "ada": {"train.ada_target": 0.6},
    # ADA off explicitly: on the recipe (auto+diffaugment) a long run would otherwise get both.
    "diffaugment": {"train.diffaugment": "color,translation,cutout", "train.ada_target": 0.0},
    "lr_2e-4": {"train.g_learning_rate": 2e-4, "train.d_learning_rate": 2e-4},
    "lr_2e-4_ada": {
        "train.g_learning_rate": 2e-4,
        "train.d_learning_rate": 2e-4,
        "train.ada_target": 0.6,
    },
}

# The row of what configs/auto.py's recipe (pipeline.recipe) chooses for the benchmark's data;
# "auto+NAME" is that recipe with candidate NAME's overrides on top.
AUTO_ROW = "auto"
AUTO_PREFIX = AUTO_ROW + "+"


@dataclasses.dataclass
class Row:
    name: str
    description: str
    overrides: dict | None  # None: the article's DCGAN

    def spec(self) -> dict:
        return {"name": self.name, "overrides": self.overrides}


def parse_candidate(text: str) -> Row:
    name, _, assignments = text.partition(":")
    if not name or not assignments:
        raise ValueError(f"--candidate must look like 'name:field=value,...', got {text!r}")
    overrides = {}
    for item in assignments.split(","):
        field, _, value = item.partition("=")
        overrides[field.strip()] = _parse_value(value.strip())
    return Row(name, assignments, overrides)


def _parse_value(value: str):
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return {"True": True, "False": False}.get(value, value)


def known_rows(extra: list[str], config_path: str = DEFAULT_CONFIG) -> dict[str, Row]:
    rows = {
        "article_dcgan": Row("article_dcgan", "the article's DCGAN (reference)", None),
        "previous_default": Row(
            "previous_default", "the demo config before this benchmark", PREVIOUS_DEFAULT
        ),
        "default": Row("default", f"{config_path} as it is", {}),
    }
    for name, overrides in CANDIDATES.items():
        rows[name] = Row(name, ", ".join(f"{k}={v}" for k, v in overrides.items()), overrides)
    for text in extra:
        row = parse_candidate(text)
        rows[row.name] = row
    return rows


def is_recipe_row(name: str) -> bool:
    return name == AUTO_ROW or name.startswith(AUTO_PREFIX)


def check_row_names(names: list[str], rows: dict[str, Row]) -> None:
    """ValueError naming every row that is neither in `rows` nor a recipe row; auto+NAME needs
    a candidate of overrides (the article's DCGAN has none to put on the recipe)."""

    def known(name):
        if name.startswith(AUTO_PREFIX):
            return getattr(rows.get(name.removeprefix(AUTO_PREFIX)), "overrides", None) is not None
        return name == AUTO_ROW or name in rows

    unknown = [name for name in names if not known(name)]
    if unknown:
        raise ValueError(
            f"unknown rows {unknown}; known: {sorted(rows)}, {AUTO_ROW} and "
            f"{AUTO_PREFIX}NAME for a candidate NAME"
        )


def select_rows(names: list[str], rows: dict[str, Row], choices: dict | None) -> list[Row]:
    """The rows named, in order; a recipe row trains the recipe's `choices` for the data (auto),
    with a candidate's overrides on top (auto+NAME)."""
    selected = []
    for name in names:
        if not is_recipe_row(name):
            selected.append(rows[name])
            continue
        extra = rows[name.removeprefix(AUTO_PREFIX)].overrides if name != AUTO_ROW else {}
        description = "pipeline.recipe's choices for this data"
        if extra:
            description += " + " + ", ".join(f"{k}={v}" for k, v in extra.items())
        selected.append(Row(name, description, {**choices, **extra}))
    return selected


def recipe_choices(base, stats: dict, images: int) -> dict:
    """What configs/auto.py would train on this data for a run of `images` images: the recipe's
    data-dependent choices, its length-dependent ones (ADA) taken for the images budget rather
    than the --config file's train.steps; with no images budget (equal seconds), for the
    recipe's own length."""
    planned = copy.deepcopy(base)
    batch = int(base.train.batch_size)
    planned.train.steps = -(-int(images) // batch) if images else None
    return recipe.choices_for(planned, stats)
