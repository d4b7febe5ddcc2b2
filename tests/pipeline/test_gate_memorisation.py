"""The gate's memorisation rule (pipeline.gate), decided on hand-written metrics.

What is guarded: a model whose samples copy training images is not blessed, and the reason
names the measure (controls.nearest_neighbours.samples_closer_than_real_eval_5th_percentile),
its value, the threshold (evaluate.max_near_copy_share), nearest_neighbours.png and the
closest (sample, training image) pairs. A missing or non-numeric measure never blesses while
the rule is on; only an explicit opt-out says so in the reason: the rule off (inf), the
controls skipped (evaluate.controls=False), an image-to-image task (no such measure), or a
metrics.json decided before the rule existed when the export stage passes no rule.

The model that really copies its training images is in test_memorising_model.py.
"""

import json
import math

import pytest

from configs import default, smoke
from pipeline import gate
from pipeline import workdir as workdir_layout
from pipeline.evaluate import generator_eval

FD = "frechet_distance"
PAIRS = [
    {"sample": 12, "train": 3, "distance": 0.01},
    {"sample": 40, "train": 7, "distance": 0.02},
]


def _metrics(share, *, pairs=PAIRS, controls=True) -> dict:
    """Sampling-model metrics with a good FD and the memorisation measure `share`
    (the key is left out when share is ...)."""
    near = {"ratio": 0.5, "closest_pairs": pairs, "plot": gate.NEIGHBOURS_PLOT}
    if share is not ...:
        near[gate.MEMORISATION_MEASURE] = share
    metrics = {FD: 1.0, "extractor": "domain_classifier", "extractor_fingerprint": "f00d"}
    if controls:
        metrics["controls"] = {"nearest_neighbours": near}
    return metrics


def _decide(metrics, share_threshold, tmp_path):
    return gate.decide_gate(metrics, FD, 5.0, tmp_path, max_near_copy_share=share_threshold)


def _write(workdir, metrics: dict, *, record=True, threshold=0.2) -> None:
    """metrics.json as the evaluate stage writes it: the gate (with the memorisation record
    unless `record` is False) and a stored verdict of "blessed": true, never trusted."""
    gate_record = {"metric": FD, "threshold": None, "baseline_tolerance": 0.0}
    if record:
        gate_record["memorisation"] = {"measure": gate.MEMORISATION_FIELD, "threshold": threshold}
    path = workdir_layout.metrics_path(workdir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**metrics, "blessed": True, "gate": gate_record}))


# --------------------------------------------------------------------------
# The rule
# --------------------------------------------------------------------------


def test_a_model_that_copies_training_images_is_refused_naming_the_measure_and_pairs(tmp_path):
    decision = _decide(_metrics(0.97), 0.2, tmp_path)
    assert decision["blessed"] is False
    reason = decision["reason"]
    assert reason.startswith(
        f"memorisation: {gate.MEMORISATION_FIELD}=0.97 is above the threshold "
        "max_near_copy_share=0.2"
    )
    assert "nearest_neighbours.png" in reason
    assert reason.endswith("closest (sample, training image) pairs: (12, 3), (40, 7)")
    assert decision["memorisation"] == {
        "measure": gate.MEMORISATION_FIELD,
        "threshold": 0.2,
        "value": 0.97,
        "closest_pairs": PAIRS,
        "plot": "nearest_neighbours.png",
    }
    json.dumps(decision, allow_nan=False)  # strict JSON, as metrics.json is written


def test_the_memorisation_threshold_is_inclusive_and_the_next_float_above_is_refused(tmp_path):
    assert _decide(_metrics(0.2), 0.2, tmp_path)["blessed"] is True
    assert _decide(_metrics(math.nextafter(0.2, 1.0)), 0.2, tmp_path)["blessed"] is False


def test_a_model_below_the_threshold_is_blessed_and_the_record_says_why(tmp_path):
    decision = _decide(_metrics(0.011), 0.2, tmp_path)
    assert decision["blessed"] is True
    assert decision["memorisation"]["value"] == 0.011
    assert "memorisation" not in decision["reason"]


def test_the_pairs_are_optional_in_the_reason(tmp_path):
    decision = _decide(_metrics(0.97, pairs=None), 0.2, tmp_path)
    assert decision["blessed"] is False
    assert decision["reason"].endswith("see nearest_neighbours.png beside metrics.json")


def test_the_rule_refuses_even_when_the_score_and_health_are_fine(tmp_path):
    metrics = {**_metrics(0.5), "training_health": {"ok": True, "warnings": []}}
    assert _decide(metrics, 0.2, tmp_path)["reason"].startswith("memorisation:")


# --------------------------------------------------------------------------
# A missing measure: refused while the rule is on
# --------------------------------------------------------------------------

NOT_A_SHARE = {
    "missing": ...,
    "null": None,
    "nan": math.nan,
    "string": "0.01",
    "boolean": False,
    "list": [0.01],
}


@pytest.mark.parametrize("value", NOT_A_SHARE.values(), ids=NOT_A_SHARE.keys())
def test_a_measure_that_is_not_a_finite_number_is_refused_while_the_rule_is_on(tmp_path, value):
    decision = _decide(_metrics(value), 0.2, tmp_path)
    assert decision["blessed"] is False
    assert decision["reason"].startswith(f"memorisation: {gate.MEMORISATION_FIELD} is ")
    assert "re-run the evaluate stage" in decision["reason"]


@pytest.mark.parametrize("controls", [None, {}, {"nearest_neighbours": "x"}, "skipped"])
def test_metrics_without_the_controls_are_refused_while_the_rule_is_on(tmp_path, controls):
    metrics = _metrics(0.0, controls=False)
    if controls is not None:
        metrics["controls"] = controls
    assert _decide(metrics, 0.2, tmp_path)["blessed"] is False


def test_the_rule_off_blesses_a_copier_and_records_that_it_is_off(tmp_path):
    decision = _decide(_metrics(1.0), math.inf, tmp_path)
    assert decision["blessed"] is True
    assert decision["memorisation"]["threshold"] is None  # inf is stored as null
    assert "off" in decision["memorisation"]["note"]


def test_skipped_controls_bless_but_the_reason_says_memorisation_was_not_checked(tmp_path):
    metrics = {**_metrics(0.0, controls=False), "controls": {"skipped": "controls is False"}}
    decision = _decide(metrics, 0.2, tmp_path)
    assert decision["blessed"] is True
    assert "memorisation not checked: the controls were skipped" in decision["reason"]


def test_image_to_image_tasks_have_no_memorisation_measure_and_no_rule(tmp_path):
    metrics = {**_metrics(0.0, controls=False), "task": {"name": "super_resolution"}}
    decision = _decide(metrics, 0.2, tmp_path)
    assert decision["blessed"] is True
    assert decision["memorisation"]["note"].startswith("not applicable")


# --------------------------------------------------------------------------
# Thresholds that are not shares
# --------------------------------------------------------------------------

BAD_THRESHOLDS = {
    "nan": math.nan,
    "minus_inf": -math.inf,
    "negative": -0.1,
    "above_one": 1.5,
    "boolean": True,
    "string": "0.2",
    "none": None,
}


@pytest.mark.parametrize("value", BAD_THRESHOLDS.values(), ids=BAD_THRESHOLDS.keys())
def test_a_threshold_that_is_not_a_share_or_inf_is_refused_before_any_decision(tmp_path, value):
    with pytest.raises(ValueError, match="max_near_copy_share must be a share in"):
        _decide(_metrics(0.0), value, tmp_path)
    config = smoke.get_config()
    try:
        config.evaluate.max_near_copy_share = value
    except TypeError:
        return  # ml_collections refuses a string for a float field itself
    if type(config.evaluate.max_near_copy_share) is not type(value):
        return  # ml_collections casts a bool to 1.0 / 0.0
    with pytest.raises(ValueError, match="config.evaluate.max_near_copy_share"):
        generator_eval.validate_config(config)


def test_the_shipped_default_is_the_gates_and_inf_turns_the_rule_off():
    config = default.get_config()
    assert config.evaluate.max_near_copy_share == gate.DEFAULT_MAX_NEAR_COPY_SHARE
    config = smoke.get_config()
    config.evaluate.max_near_copy_share = math.inf
    generator_eval.validate_config(config)


# --------------------------------------------------------------------------
# check_blessing: the export stage's re-decision from metrics.json
# --------------------------------------------------------------------------


def test_check_blessing_redecides_the_recorded_rule_whatever_the_stored_verdict(tmp_path):
    _write(tmp_path, _metrics(0.97))
    blessed, reason = gate.check_blessing(tmp_path)
    assert blessed is False and reason.startswith("memorisation:")
    _write(tmp_path, _metrics(0.97), threshold=None)  # recorded as off
    assert gate.check_blessing(tmp_path)[0] is True


def test_check_blessing_refuses_a_recorded_measure_that_went_missing(tmp_path):
    _write(tmp_path, _metrics(...))
    blessed, reason = gate.check_blessing(tmp_path)
    assert blessed is False and "re-run the evaluate stage" in reason


@pytest.mark.parametrize("recorded", ["NaN", '"0.2"', "-1", "true"])
def test_check_blessing_refuses_a_recorded_threshold_that_is_not_a_share(tmp_path, recorded):
    _write(tmp_path, _metrics(0.0))
    path = workdir_layout.metrics_path(tmp_path)
    text = path.read_text().replace('"threshold": 0.2', f'"threshold": {recorded}')
    path.write_text(text)
    blessed, reason = gate.check_blessing(tmp_path)
    assert blessed is False and "unreadable or has no gate" in reason


def test_an_older_metrics_json_without_the_measure_is_refused_when_the_rule_is_on(tmp_path):
    # Decided before the rule existed: no record and no measure. With the export stage's rule
    # on it is refused, not blessed by default.
    _write(tmp_path, _metrics(..., controls=False), record=False)
    blessed, reason = gate.check_blessing(tmp_path, max_near_copy_share=0.2)
    assert blessed is False and "an evaluation from before the rule has no measure" in reason
    # With the measure (older evaluations with controls had it), it is judged by the rule.
    _write(tmp_path, _metrics(0.5), record=False)
    assert gate.check_blessing(tmp_path, max_near_copy_share=0.2)[0] is False
    _write(tmp_path, _metrics(0.01), record=False)
    assert gate.check_blessing(tmp_path, max_near_copy_share=0.2)[0] is True


def test_an_older_metrics_json_without_a_rule_given_says_memorisation_was_not_checked(tmp_path):
    _write(tmp_path, _metrics(..., controls=False), record=False)
    blessed, reason = gate.check_blessing(tmp_path)
    assert blessed is True
    assert reason.endswith("memorisation not checked: metrics.json has no memorisation rule "
                           "(evaluated before it existed)")  # fmt: skip


def test_the_export_stages_rule_overrides_the_recorded_one(tmp_path):
    _write(tmp_path, _metrics(0.5), threshold=None)
    assert gate.check_blessing(tmp_path)[0] is True
    assert gate.check_blessing(tmp_path, max_near_copy_share=0.2)[0] is False
    with pytest.raises(ValueError):
        gate.check_near_copy_threshold(math.nan)
    blessed, reason = gate.check_blessing(tmp_path, max_near_copy_share=math.nan)
    assert blessed is False and "max_near_copy_share" in reason
