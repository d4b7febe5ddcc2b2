"""The export gate's safety paths, decided on hand-written JSON (pipeline.gate).

What is guarded: a model leaves the workdir only when `check_blessing` (which the export
stage calls) re-decides the gate from evaluate/metrics.json and says yes. These tests write
that file, and the `assets.extra/evaluation.json` of earlier exported versions, by hand, the
way a crashed writer, a hand edit or an older release could leave them, and check that

  * a gate metric that is not a finite number (NaN, +-Infinity, missing, a string, ...) is
    never blessed, whatever the stored verdict says, and the reason names the metric;
  * an unreadable or gate-less metrics.json refuses, naming the file;
  * an exported version whose evaluation.json is missing, corrupt or has no finite value is
    not compared with (no comparison against garbage) and the reason says so; the threshold
    still applies;
  * the threshold and the comparison with the latest exported version are inclusive at the
    boundary (lower is better: equal passes, the next float up fails).

Why: a NaN compares False with everything, so a `value > threshold` test alone lets it
through; the stored `"blessed": true` is never trusted. The last section covers gaps found
while writing these tests, now closed in pipeline/gate.py (each test was seen to fail before).
"""

import json
import math

import pytest

from gan_keras.export import layout
from pipeline import gate
from pipeline import workdir as workdir_layout

FD = "frechet_distance"
FINGERPRINT = '"extractor": "inception_v3", "extractor_fingerprint": "f00d"'


def _metrics_text(value: str, *, metric: str = FD, threshold: str = "null", tolerance="0.0"):
    """Hand-written metrics.json: `value` is the JSON literal of `metric` ('' leaves it out);
    the other gate metrics are good, and the stored verdict is always "blessed": true. The
    memorisation rule is recorded as off (its own tests: test_gate_memorisation.py)."""
    scores = {m: "1.0" for m in gate.GATE_METRICS}
    if value:
        scores[metric] = value
    else:
        del scores[metric]
    fields = ", ".join(f'"{m}": {v}' for m, v in scores.items())
    return (
        f'{{{fields}, {FINGERPRINT}, "blessed": true, "gate": {{"metric": "{metric}", '
        f'"threshold": {threshold}, "baseline_tolerance": {tolerance}, '
        f'"memorisation": {{"threshold": null}}}}}}'
    )


def _write_metrics(workdir, text):
    path = workdir_layout.metrics_path(workdir)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def _export_version(workdir, version: int, evaluation=None):
    """An exported version directory; `evaluation` (text or bytes) becomes its evaluation.json."""
    model_dir = workdir_layout.export_base_path(workdir) / str(version)
    (model_dir / layout.ASSETS_DIR).mkdir(parents=True)
    (model_dir / layout.SAVED_MODEL_FILE).write_bytes(b"")
    path = layout.asset_path(model_dir, layout.EVALUATION_ASSET)
    if isinstance(evaluation, bytes):
        path.write_bytes(evaluation)
    elif evaluation is not None:
        path.write_text(evaluation)
    return path


def _scored(value: float, metric: str = FD) -> dict:
    """Metrics as the evaluate stage holds them: the value and the feature extractor."""
    return {metric: value, "extractor": "inception_v3", "extractor_fingerprint": "f00d"}


def _evaluation_text(value: str, metric: str = FD, fingerprint: str = FINGERPRINT) -> str:
    return f'{{"{metric}": {value}, {fingerprint}, "blessed": true}}'


# --------------------------------------------------------------------------
# Metric values that are not finite numbers
# --------------------------------------------------------------------------

NOT_FINITE = {
    "nan": "NaN",
    "plus_infinity": "Infinity",
    "minus_infinity": "-Infinity",
    "missing": "",
    "string": '"1.5"',
    "null": "null",
    "list": "[1.5]",
    "object": '{"value": 1.5}',
}


@pytest.mark.parametrize("metric", gate.GATE_METRICS)
@pytest.mark.parametrize("literal", NOT_FINITE.values(), ids=NOT_FINITE.keys())
def test_a_gate_metric_that_is_not_a_finite_number_is_never_blessed(tmp_path, metric, literal):
    # No threshold and no exported version: nothing but the finiteness check can refuse.
    _write_metrics(tmp_path, _metrics_text(literal, metric=metric))
    blessed, reason = gate.check_blessing(tmp_path)
    assert blessed is False
    assert reason.startswith(f"{metric} is ")
    assert reason.endswith("not a finite number")


def test_a_nan_metric_is_refused_even_below_a_baseline_and_a_threshold(tmp_path):
    # NaN compares False with both the threshold and the baseline's allowance.
    _export_version(tmp_path, 1, _evaluation_text("2.0"))
    decision = gate.decide_gate(
        json.loads(_metrics_text("NaN", threshold="5.0")), FD, 5.0, tmp_path, tolerance=0.5
    )
    assert decision["blessed"] is False
    assert decision["reason"] == f"{FD} is nan, not a finite number"


# --------------------------------------------------------------------------
# metrics.json that cannot be trusted
# --------------------------------------------------------------------------


def test_a_missing_metrics_json_is_refused_naming_it(tmp_path):
    path = workdir_layout.metrics_path(tmp_path)
    assert gate.check_blessing(tmp_path) == (
        False,
        f"{path} is missing: run the evaluate stage first",
    )


CORRUPT_METRICS = {
    "truncated": (
        '{"frechet_distance": 1.0, "blessed": true, "gate": {"metric": "fr',
        "JSONDecode",
    ),
    "empty": ("", "JSONDecodeError"),
    "not_utf8": (b'{"frechet_distance": 1.0, "\xff": 1}', "UnicodeDecodeError"),
    "a_list": ("[]", "TypeError"),
    "null": ("null", "TypeError"),
    "verdict_without_gate": ('{"frechet_distance": 1.0, "blessed": true}', "KeyError"),
    "gate_without_metric": ('{"frechet_distance": 1.0, "gate": {"threshold": 5}}', "KeyError"),
    "gate_without_threshold": (
        '{"frechet_distance": 1.0, "gate": {"metric": "frechet_distance"}}',
        "KeyError",
    ),
    "gate_is_a_list": ('{"frechet_distance": 1.0, "gate": ["frechet_distance", 5]}', "TypeError"),
    "threshold_is_text": (
        '{"frechet_distance": 1.0, "gate": {"metric": "frechet_distance", "threshold": "five"}}',
        "ValueError",
    ),
    "tolerance_is_null": (
        '{"frechet_distance": 1.0, "gate": {"metric": "frechet_distance", "threshold": 5,'
        ' "baseline_tolerance": null}}',
        "TypeError",
    ),
}


@pytest.mark.parametrize(("text", "error"), CORRUPT_METRICS.values(), ids=CORRUPT_METRICS.keys())
def test_an_unreadable_or_gateless_metrics_json_is_refused_naming_it(tmp_path, text, error):
    path = _write_metrics(tmp_path, text)
    blessed, reason = gate.check_blessing(tmp_path)
    assert blessed is False
    assert reason.startswith(f"{path} is unreadable or has no gate (")
    assert error in reason


def test_a_metrics_json_that_is_a_directory_is_refused_naming_it(tmp_path):
    path = workdir_layout.metrics_path(tmp_path)
    path.mkdir(parents=True)
    blessed, reason = gate.check_blessing(tmp_path)
    assert blessed is False
    assert reason.startswith(f"{path} is unreadable or has no gate (IsADirectoryError")


# --------------------------------------------------------------------------
# The threshold at its boundary
# --------------------------------------------------------------------------


def test_a_value_equal_to_the_threshold_is_blessed(tmp_path):
    _write_metrics(tmp_path, _metrics_text("2.5", threshold="2.5"))
    assert gate.check_blessing(tmp_path) == (
        True,
        f"{FD}=2.5 <= threshold 2.5; no exported version to compare with",
    )


def test_the_next_float_above_the_threshold_is_refused(tmp_path):
    above = math.nextafter(2.5, math.inf)
    _write_metrics(tmp_path, _metrics_text(repr(above), threshold="2.5"))
    assert gate.check_blessing(tmp_path) == (False, f"{FD}=2.5 is above the threshold 2.5")


def test_the_threshold_applies_even_when_the_exported_baseline_is_unreadable(tmp_path):
    _export_version(tmp_path, 1, '{"frechet_distance": ')
    _write_metrics(tmp_path, _metrics_text("3.0", threshold="2.5"))
    assert gate.check_blessing(tmp_path) == (False, f"{FD}=3 is above the threshold 2.5")


# --------------------------------------------------------------------------
# The comparison with the latest exported version
# --------------------------------------------------------------------------


def test_a_model_worse_than_the_exported_version_is_refused_naming_it(tmp_path):
    _export_version(tmp_path, 1, _evaluation_text("2.0"))
    _write_metrics(tmp_path, _metrics_text("2.25"))
    assert gate.check_blessing(tmp_path) == (
        False,
        f"{FD}=2.25 is worse than exported version 1 (2, tolerance 0)",
    )


def test_a_model_equal_to_the_exported_version_is_blessed_against_it(tmp_path):
    path = _export_version(tmp_path, 1, _evaluation_text("2.0"))
    decision = gate.decide_gate(json.loads(_metrics_text("2.0")), FD, math.inf, tmp_path)
    assert decision["blessed"] is True
    assert decision["baseline"] == {"version": 1, "value": 2.0, "path": str(path)}
    assert decision["reason"] == f"{FD}=2 <= threshold inf; not worse than exported version 1 (2)"


def test_the_baseline_tolerance_is_inclusive_and_the_next_float_above_is_refused(tmp_path):
    # 2.0 * (1 + 0.25) = 2.5 exactly.
    _export_version(tmp_path, 1, _evaluation_text("2.0"))
    at, above = 2.5, math.nextafter(2.5, math.inf)
    assert gate.decide_gate(_scored(at), FD, math.inf, tmp_path, tolerance=0.25)["blessed"] is True
    refused = gate.decide_gate(_scored(above), FD, math.inf, tmp_path, tolerance=0.25)
    assert refused["blessed"] is False
    assert refused["reason"] == f"{FD}=2.5 is worse than exported version 1 (2, tolerance 0.25)"


def test_the_tolerance_widens_a_negative_baseline_upwards(tmp_path):
    # The unbiased KID estimate can be negative: -2.0 with 50% tolerance allows up to -1.0,
    # not down to -3.0.
    _export_version(tmp_path, 1, _evaluation_text("-2.0", metric="kid_mean"))
    metrics = _scored(-1.0, "kid_mean")
    decision = gate.decide_gate(metrics, "kid_mean", math.inf, tmp_path, tolerance=0.5)
    assert decision["blessed"] is True
    worse = gate.decide_gate(
        _scored(-0.5, "kid_mean"), "kid_mean", math.inf, tmp_path, tolerance=0.5
    )
    assert worse["blessed"] is False


def test_the_baseline_is_the_highest_version_number_not_the_last_name(tmp_path):
    # Versions 9 and 10: "9" sorts after "10" as text; the exported version is 10.
    _export_version(tmp_path, 9, _evaluation_text("1.0"))
    path = _export_version(tmp_path, 10, _evaluation_text("3.0"))
    decision = gate.decide_gate(_scored(2.0), FD, math.inf, tmp_path)
    assert decision["blessed"] is True
    assert decision["baseline"] == {"version": 10, "value": 3.0, "path": str(path)}


def test_a_baseline_from_another_feature_extractor_is_not_compared(tmp_path):
    other = '"extractor": "inception_v3", "extractor_fingerprint": "beef"'
    _export_version(tmp_path, 1, _evaluation_text("0.5", fingerprint=other))
    decision = gate.decide_gate(json.loads(_metrics_text("2.0")), FD, math.inf, tmp_path)
    assert decision["blessed"] is True
    assert decision["baseline"] is None
    assert "measured with another feature extractor" in decision["reason"]


# --------------------------------------------------------------------------
# An exported version whose evaluation.json is missing, corrupt or without the metric
# --------------------------------------------------------------------------


def test_an_exported_version_without_evaluation_json_is_compared_with_the_threshold_only(
    tmp_path,
):
    # A forced export of a never-evaluated model keeps no evaluation.json.
    _export_version(tmp_path, 1)
    decision = gate.decide_gate(json.loads(_metrics_text("2.0")), FD, 5.0, tmp_path)
    assert decision["blessed"] is True
    assert decision["baseline"] is None
    assert decision["reason"] == (
        f"{FD}=2 <= threshold 5; exported version 1 has no evaluation.json; "
        "compared with the threshold only"
    )


CORRUPT_EVALUATIONS = {
    "truncated": '{"frechet_distance": 0.5, "extractor": "incep',
    "empty": "",
    "not_utf8": b'{"frechet_distance": 0.5, "\xff": 1}',
}


@pytest.mark.parametrize("text", CORRUPT_EVALUATIONS.values(), ids=CORRUPT_EVALUATIONS.keys())
def test_a_corrupt_evaluation_json_is_reported_and_not_compared(tmp_path, text):
    path = _export_version(tmp_path, 1, text)
    decision = gate.decide_gate(json.loads(_metrics_text("2.0")), FD, 5.0, tmp_path)
    assert decision["blessed"] is True
    assert decision["baseline"] is None
    assert f"cannot read {path} (" in decision["reason"]
    assert decision["reason"].endswith("; compared with the threshold only")


def test_an_evaluation_json_that_is_a_directory_is_reported_and_not_compared(tmp_path):
    path = _export_version(tmp_path, 1)
    path.mkdir()
    decision = gate.decide_gate(json.loads(_metrics_text("2.0")), FD, 5.0, tmp_path)
    assert decision["blessed"] is True
    assert decision["baseline"] is None
    assert f"cannot read {path} (" in decision["reason"]


BASELINES_WITHOUT_A_VALUE = {
    "nan": "NaN",
    "plus_infinity": "Infinity",
    "minus_infinity": "-Infinity",
    "string": '"0.5"',
    "null": "null",
}


@pytest.mark.parametrize(
    "literal", BASELINES_WITHOUT_A_VALUE.values(), ids=BASELINES_WITHOUT_A_VALUE.keys()
)
def test_a_baseline_without_a_finite_value_is_not_compared(tmp_path, literal):
    _export_version(tmp_path, 1, _evaluation_text(literal))
    decision = gate.decide_gate(json.loads(_metrics_text("2.0")), FD, 5.0, tmp_path)
    assert decision["blessed"] is True
    assert decision["baseline"] is None
    assert decision["reason"].endswith(
        f"exported version 1 has no {FD}; compared with the threshold only"
    )


def test_a_baseline_without_the_gate_metric_is_not_compared(tmp_path):
    _export_version(tmp_path, 1, _evaluation_text("0.5", metric="kid_mean"))
    decision = gate.decide_gate(json.loads(_metrics_text("2.0")), FD, 5.0, tmp_path)
    assert decision["blessed"] is True
    assert decision["baseline"] is None
    assert decision["reason"].endswith(
        f"exported version 1 has no {FD}; compared with the threshold only"
    )


# --------------------------------------------------------------------------
# Gaps these tests found, closed in pipeline/gate.py (each test was seen to fail before)
# --------------------------------------------------------------------------


def test_a_minus_infinity_or_nan_threshold_is_refused_before_any_decision(tmp_path):
    # -inf cannot round-trip through metrics.json (+inf is stored as null), so it would refuse
    # at evaluate and bless at export; NaN would let everything through.
    from configs import smoke
    from pipeline.evaluate import generator_eval

    for threshold in (-math.inf, math.nan):
        with pytest.raises(ValueError, match="gate threshold must be a number or inf"):
            gate.decide_gate(json.loads(_metrics_text("1.0")), FD, threshold, tmp_path)
        config = smoke.get_config()
        config.evaluate.threshold = threshold
        with pytest.raises(ValueError, match="threshold"):
            generator_eval.validate_config(config)


def test_a_boolean_metric_is_never_blessed(tmp_path):
    _write_metrics(tmp_path, _metrics_text("true", threshold="5.0"))
    assert gate.check_blessing(tmp_path)[0] is False


@pytest.mark.parametrize(
    ("threshold", "tolerance", "baseline"),
    [("NaN", "0.0", None), ("null", "NaN", "0.5")],
    ids=["threshold", "tolerance"],
)
def test_a_nan_threshold_or_tolerance_in_metrics_json_is_refused(
    tmp_path, threshold, tolerance, baseline
):
    # 2.0 is refused by any real threshold below it and by a baseline of 0.5.
    if baseline is not None:
        _export_version(tmp_path, 1, _evaluation_text(baseline))
    _write_metrics(tmp_path, _metrics_text("2.0", threshold=threshold, tolerance=tolerance))
    assert gate.check_blessing(tmp_path)[0] is False


@pytest.mark.parametrize("text", ["[]", "null", '"blessed"', "0.5"])
def test_an_evaluation_json_that_is_not_an_object_is_reported_and_not_compared(tmp_path, text):
    path = _export_version(tmp_path, 1, text)
    decision = gate.decide_gate(json.loads(_metrics_text("2.0")), FD, 5.0, tmp_path)
    assert decision["baseline"] is None
    assert str(path) in decision["reason"]


def test_a_metrics_json_with_a_malformed_training_health_is_refused(tmp_path):
    text = _metrics_text("1.0", threshold="5.0").replace(
        '"blessed"', '"training_health": "ok", "blessed"'
    )
    _write_metrics(tmp_path, text)
    assert gate.check_blessing(tmp_path)[0] is False
