"""Property-based fuzzing (hypothesis) of config validation: a bad value is a named ValueError.

Guarded: the checks the runner does before any work (`runner.Runner.validate`, which calls
every stage's `validate_config`: pipeline.ingest.config_checks, pipeline.train.validation,
pipeline.judge, pipeline.evaluate.generator_eval and control_metrics,
pipeline.export.export_stage). pipeline.run answers a ValueError with one `error: ...` line
naming the field; any other exception (TypeError, KeyError, AttributeError,
ZeroDivisionError, OverflowError...) ends the run in a traceback instead. So the property:
starting from configs/smoke.py, setting any one field to any value that can reach validation
makes it pass, or raise a ValueError whose message names the field.

Which values can reach validation: a config file starts from default.get_config(), a type-safe
ml_collections ConfigDict, and run.py locks it (lock_config=True); `--config.<field>=<text>`
overrides are parsed by ml_collections.config_flags into the field's type. So a field holds a
value of its own type (ints of any size, floats with NaN and infinities, any string, tuples of
anything), a bool where an int goes, an int where a float goes, or None. Hypothesis draws
values of every type; those the ConfigDict itself refuses on assignment (a TypeError for a
wrong type) never get to validation and are not a validation bug, so they are discarded. A
second property sends arbitrary text through the real flag parser (values absl refuses are a
usage error before validation, discarded too). None, the placeholder configs/auto.py leaves
for the automatic recipe to fill, is tried in every field by a parametrized test.

Two bugs these properties found are fixed and pinned by the last tests here: None crashed the
train stage's checks in 26 fields with a TypeError (pipeline.runner now names an unset field
first), and a NUL character in train.init_from was an error that named no field.

Runs are derandomized (the same examples on every run) and keep no example database.
"""

import collections
import math

import ml_collections
import pytest
from absl import flags
from helpers import REPO
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from ml_collections import config_flags

from configs import smoke
from pipeline import runner, stages

SETTINGS = dict(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def _flatten(config, prefix=""):
    for key, value in config.items():
        if isinstance(value, ml_collections.ConfigDict):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


DEFAULTS = dict(_flatten(smoke.get_config()))
FIELDS = sorted(DEFAULTS)

# Strings the validators compare with (registry names, source kinds), so that a drawn string
# is sometimes valid and moves validation on to the checks behind it.
TOKENS = [
    "",
    "batch",
    "layer",
    "none",
    "embedding",
    "conditional_batch_norm",
    "dcgan",
    "stylegan2",
    "non_saturating",
    "minimax",
    "hinge",
    "wgan_gp",
    "least_squares",
    "auto",
    "mirrored",
    "multi_worker",
    "default",
    "translation",
    "translation,cutout,color",
    "cutout,cutout",
    "generate",
    "super_resolution",
    "inpainting",
    "center",
    "random_box",
    "free_form",
    "edges",
    "grayscale",
    "domain_classifier",
    "keras_inception_v3",
    "fid_inception",
    "inception_v3",
    "frechet_distance",
    "intra_frechet_distance",
    "kid",
    "digits",
    "tfds:mnist",
    "tfds:",
    "idx:/nonexistent",
    "folder:/nonexistent",
    "gs://bucket/x",
    "gs:/bucket",
    "0,1,,2",
    "'unclosed",
    "None",
    "nan",
]

ints = st.sampled_from([0, 1, -1, 2, 3, 16, 2**31, 2**63, -(2**63), 10**100]) | st.integers()
floats = (
    st.sampled_from([0.0, -0.0, 1.0, 0.5, 1e-300, 1e300, math.inf, -math.inf, math.nan])
    | st.floats()
)
strings = st.sampled_from(TOKENS) | st.text(max_size=12)
scalars = ints | floats | strings | st.booleans()
# Tuple and list fields (evaluate.truncation_psis, edit_strengths) take sequences of anything.
sequences = st.lists(scalars | st.none() | st.lists(scalars, max_size=2), max_size=5)
anything = st.recursive(
    scalars | st.none(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=6,
)
OWN_TYPE = {
    bool: st.booleans(),
    int: ints | st.booleans(),
    float: floats | ints,
    str: strings,
    tuple: sequences | sequences.map(tuple),
}


def field_values(field: str):
    """Values of the field's own type (what overrides produce), and of any type (what a
    config file may try to set; the ConfigDict refuses most)."""
    return OWN_TYPE[type(DEFAULTS[field])] | anything


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A --workdir for the runner; validation reads it, never writes it."""
    return tmp_path_factory.mktemp("config_properties") / "work"


def check_validation(config, field: str, workdir) -> str:
    """Validates as pipeline.run does before any work; returns "ok" or the error.

    A ValueError must name the field; any other exception propagates (the test fails)."""
    try:
        runner.Runner(config, workdir).validate(stages.names())
    except ValueError as e:
        key = field.rsplit(".", 1)[1]
        assert key in str(e), f"{field}: the error does not name the field: {e}"
        return str(e)
    return "ok"


def set_field(config, field: str, value) -> None:
    section, key = field.split(".")
    config[section][key] = value


def test_any_value_of_any_field_passes_or_is_a_named_error(workdir):
    """The examples must include values that pass and values refused in many fields, or the
    strategies no longer reach validation and the property proves little."""
    outcomes = collections.Counter()

    @settings(max_examples=600, **SETTINGS)
    @given(data=st.data(), field=st.sampled_from(FIELDS))
    def prop(data, field):
        value = data.draw(field_values(field), label="value")
        if value is None:
            reject()  # test_unset_field_passes_or_is_a_named_error tries None in every field
        config = smoke.get_config()
        config.lock()  # as run.py's lock_config=True
        try:
            set_field(config, field, value)
        except (TypeError, OverflowError, ValueError):
            # The ConfigDict refused it (a wrong type; a dict with a dotted key): it never
            # reaches validation.
            reject()
        result = check_validation(config, field, workdir)
        outcomes["ok" if result == "ok" else f"refused {field}"] += 1

    prop()
    print(f"outcomes: {dict(outcomes.most_common())}")
    assert outcomes["ok"] >= 50, outcomes
    assert len(outcomes) >= 30, outcomes


def override_text(field: str):
    """Text for --config.<field>=<text>: the field's own type written out, or anything."""
    typed = OWN_TYPE[type(DEFAULTS[field])].map(lambda v: repr(v) if type(v) is not str else v)
    printable = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"))
    return typed | strings | printable.filter(lambda s: not s.startswith("-"))


def parse_overrides(argv: list[str]):
    """The config pipeline.run gets for this command line (its --config flag, same options)."""
    flag_values = flags.FlagValues()
    holder = config_flags.DEFINE_config_file(
        "config", None, "config file", flag_values=flag_values, lock_config=True, sys_argv=argv
    )
    flag_values(argv)
    return holder.value


# config_flags loads the config file with importlib's deprecated load_module(), each parse.
@pytest.mark.filterwarnings("ignore:the load_module:DeprecationWarning")
def test_any_command_line_override_passes_or_is_a_named_error(workdir):
    outcomes = collections.Counter()

    @settings(max_examples=150, **SETTINGS)
    @given(data=st.data(), field=st.sampled_from(FIELDS))
    def prop(data, field):
        text = data.draw(override_text(field), label="text")
        argv = ["run", f"--config={REPO / 'configs/smoke.py'}", f"--config.{field}={text}"]
        try:
            config = parse_overrides(argv)
        except flags.Error:
            reject()  # absl refused the value (a usage error naming the flag): no validation
        result = check_validation(config, field, workdir)
        outcomes["ok" if result == "ok" else f"refused {field}"] += 1

    prop()
    print(f"outcomes: {dict(outcomes.most_common())}")
    assert outcomes["ok"] >= 20, outcomes
    assert len(outcomes) >= 15, outcomes


# Fields whose validation crashes on None instead of naming the field (a bug).


@pytest.mark.parametrize("field", FIELDS)
def test_unset_field_passes_or_is_a_named_error(workdir, field):
    config = smoke.get_config()
    config.lock()
    set_field(config, field, None)
    check_validation(config, field, workdir)


@pytest.mark.filterwarnings("ignore:the load_module:DeprecationWarning")
def test_auto_config_with_its_recipe_off_is_a_named_error(workdir):
    """configs/auto.py leaves its recipe's fields None; with the recipe turned off on the
    command line they reach validation unset: the first, data.channels (chosen before ingest),
    and with it given, the train stage's."""
    argv = [
        "run",
        f"--config={REPO / 'configs/auto.py'}",
        "--config.data.source=digits",
        "--config.train.recipe=",
    ]
    check_validation(parse_overrides(argv), "data.channels", workdir)
    argv.append("--config.data.channels=1")
    check_validation(parse_overrides(argv), "train.steps", workdir)


def test_nul_in_init_from_is_a_named_error(workdir):
    """Found by test_any_value_of_any_field_passes_or_is_a_named_error (minimal example)."""
    config = smoke.get_config()
    config.lock()
    config.train.init_from = "\x00"
    check_validation(config, "train.init_from", workdir)
