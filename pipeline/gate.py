"""The export gate (TFX Evaluator's "blessing"): may this model replace the exported one?

Blessed when `evaluate.gate_metric` <= `evaluate.threshold` (lower is better),
the samples do not copy training images (the memorisation rule, below), training
did not collapse, and the model is not worse than the currently exported version (its
<version>/assets.extra/evaluation.json), compared only when both were measured
with the same feature extractor (same fingerprint). The evaluate stage decides
it into metrics.json; the export stage decides again just before exporting, so
a version exported in between counts.

The memorisation rule (`evaluate.max_near_copy_share`, inf = off): the evaluate stage's
controls measure, in the judge's features, the share of samples that sit closer to their
nearest training image than 95% of real eval images do
(controls.nearest_neighbours.samples_closer_than_real_eval_5th_percentile: ~0.05 for a
generator that does not copy, 1.0 for one that only reproduces training images). Above the
threshold the model is refused, naming the measure, the closest (sample, training image)
pairs and nearest_neighbours.png. A sampling model's evaluation without the measure is
refused while the rule is on (never blessed by default), except when the operator turned the
measurements off (`evaluate.controls=False`): the gate then says that memorisation was not
checked. Image-to-image tasks have no such measure and no rule.
"""

import math

from gan_keras.export import layout
from gan_keras.storage import atomic
from pipeline import workdir as workdir_layout

# Lower is better for every gate metric.
GATE_METRICS = ("frechet_distance", "kid_mean", "intra_frechet_distance")
# Training-health warnings (pipeline.train.health) that refuse the blessing whatever the
# scores: a collapsed generator can score tolerably on a loose threshold and still be useless.
# D overfitting only warns: its samples are what the scores judge.
REFUSED_HEALTH = ("mode_collapse",)

# The memorisation rule's measure, under metrics["controls"]["nearest_neighbours"].
MEMORISATION_MEASURE = "samples_closer_than_real_eval_5th_percentile"
MEMORISATION_FIELD = f"controls.nearest_neighbours.{MEMORISATION_MEASURE}"
# The plot the evaluate stage writes beside metrics.json (pipeline.evaluate.control_plots).
NEIGHBOURS_PLOT = "nearest_neighbours.png"
# configs/default.py's evaluate.max_near_copy_share (a test keeps them equal). Chosen from
# measurements (docs/provenance.md, "The memorisation gate"): the Fashion-MNIST demo 0.011,
# the smoke model 0.0, a GAN made to memorise 12 digits 0.34-0.59, a generator that returns
# training images 1.0; one whose samples sit like new real images gives ~0.05 by construction.
DEFAULT_MAX_NEAR_COPY_SHARE = 0.2


def _is_number(value) -> bool:
    """A finite int or float; JSON's true/false are not scores (bool is an int in Python)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def training_health(workdir) -> dict | None:
    """The train manifest's `health` section (None before any training, or from a run made
    before the checks existed)."""
    path = workdir_layout.train_dir(workdir) / "manifest.json"
    try:
        return (atomic.read_json(path).get("summary") or {}).get("health")
    except (OSError, ValueError, AttributeError):
        return None


def check_near_copy_threshold(value, what: str = "max_near_copy_share") -> float:
    """The memorisation threshold as a float: a number in [0, 1], or inf (the rule off).
    Anything else (NaN, a bool, a string, a negative share) raises ValueError."""
    if (
        not isinstance(value, (int, float))
        or isinstance(value, bool)
        or not (0.0 <= value <= 1.0 or value == math.inf)
    ):
        raise ValueError(
            f"{what} must be a share in [0, 1] or inf (the memorisation rule off), not {value!r}"
        )
    return float(value)


def _memorisation(metrics: dict, threshold: float) -> tuple[dict, str | None]:
    """(the gate's "memorisation" record, the refusal reason or None) for `threshold`
    (a share, or inf: off)."""
    record = {
        "measure": MEMORISATION_FIELD,
        "threshold": threshold if math.isfinite(threshold) else None,
        "value": None,
    }
    if threshold == math.inf:
        return {**record, "note": "the memorisation rule is off (max_near_copy_share=inf)"}, None
    if "task" in metrics:  # pipeline.evaluate.task_eval: an image-to-image model
        return {**record, "note": "not applicable: image-to-image tasks are not measured"}, None
    controls = metrics.get("controls")
    if isinstance(controls, dict) and "skipped" in controls and len(controls) == 1:
        return {
            **record,
            "note": f"memorisation not checked: the controls were skipped ({controls['skipped']})",
        }, None
    near = controls.get("nearest_neighbours") if isinstance(controls, dict) else None
    value = near.get(MEMORISATION_MEASURE) if isinstance(near, dict) else None
    record["value"] = value
    if not _is_number(value):
        return record, (
            f"memorisation: {MEMORISATION_FIELD} is {value!r}, not a finite number, and the "
            f"memorisation rule is on (max_near_copy_share={threshold:g}): re-run the evaluate "
            "stage with evaluate.controls=True (an evaluation from before the rule has no "
            "measure), or turn the rule off with evaluate.max_near_copy_share=inf"
        )
    pairs = near.get("closest_pairs")
    if isinstance(pairs, list):
        record["closest_pairs"] = pairs
    record["plot"] = NEIGHBOURS_PLOT
    if value > threshold:
        named = ""
        if isinstance(pairs, list) and pairs:
            named = "; closest (sample, training image) pairs: " + ", ".join(
                f"({p.get('sample')}, {p.get('train')})" for p in pairs if isinstance(p, dict)
            )
        return record, (
            f"memorisation: {MEMORISATION_FIELD}={value:.6g} is above the threshold "
            f"max_near_copy_share={threshold:.6g} ({value:.1%} of samples are closer to a "
            f"training image than 95% of real eval images are: the model copies training "
            f"images); see {NEIGHBOURS_PLOT} beside metrics.json{named}"
        )
    return record, None


def _baseline(workdir, metric: str, metrics: dict) -> tuple[dict | None, str]:
    base = workdir_layout.export_base_path(workdir)
    version = layout.latest_version(base)
    if version is None:
        return None, "no exported version to compare with"
    path = layout.asset_path(base / str(version), layout.EVALUATION_ASSET)
    if not path.exists():
        return (
            None,
            f"exported version {version} has no {path.name}; compared with the threshold only",
        )
    try:
        previous = atomic.read_json(path)
        if not isinstance(previous, dict):
            raise ValueError(f"a JSON {type(previous).__name__}, not an object")
    except (OSError, ValueError) as e:
        return None, f"cannot read {path} ({e}); compared with the threshold only"
    if (previous.get("extractor"), previous.get("extractor_fingerprint")) != (
        metrics.get("extractor"),
        metrics.get("extractor_fingerprint"),
    ):
        return None, (
            f"exported version {version} was measured with another feature extractor "
            f"({previous.get('extractor')}); not comparable, compared with the threshold only"
        )
    value = previous.get(metric)
    if not _is_number(value):
        return None, f"exported version {version} has no {metric}; compared with the threshold only"
    return {"version": version, "value": float(value), "path": str(path)}, ""


def decide_gate(
    metrics: dict,
    metric: str,
    threshold: float,
    workdir,
    tolerance: float = 0.0,
    max_near_copy_share: float = math.inf,
) -> dict:
    """{'blessed', 'metric', 'value', 'threshold', 'baseline', 'memorisation', 'reason'}
    (lower is better).

    `threshold` is a number or +inf (no threshold), `tolerance` a number >= 0,
    `max_near_copy_share` a share in [0, 1] or inf (the memorisation rule off): anything else
    (NaN, -inf) raises ValueError, since every comparison with NaN is false and -inf cannot be
    written to JSON, where +inf is stored as null."""
    if math.isnan(threshold) or threshold == -math.inf:
        raise ValueError(f"the gate threshold must be a number or inf, not {threshold}")
    if not _is_number(tolerance) or tolerance < 0:
        raise ValueError(f"the gate's baseline tolerance must be a number >= 0, not {tolerance}")
    max_near_copy_share = check_near_copy_threshold(max_near_copy_share)
    value = metrics.get(metric)
    memorisation, copies = _memorisation(metrics, max_near_copy_share)
    # An infinite threshold (no threshold) is stored as null: JSON has no Infinity.
    gate = {
        "metric": metric,
        "value": value,
        "threshold": float(threshold) if math.isfinite(threshold) else None,
        "baseline": None,
        "baseline_tolerance": float(tolerance),
        "memorisation": memorisation,
    }
    if not _is_number(value):
        return {**gate, "blessed": False, "reason": f"{metric} is {value!r}, not a finite number"}
    if value > threshold:
        return {
            **gate,
            "blessed": False,
            "reason": f"{metric}={value:.6g} is above the threshold {threshold:.6g}",
        }
    if copies:
        return {**gate, "blessed": False, "reason": copies}
    health = metrics.get("training_health") or {}
    warnings = health.get("warnings", []) if isinstance(health, dict) else None
    if not isinstance(warnings, list) or not all(isinstance(w, dict) for w in warnings):
        return {**gate, "blessed": False, "reason": f"training_health is malformed: {health!r}"}
    refused = [w for w in warnings if w.get("kind") in REFUSED_HEALTH]
    if refused:
        w = refused[0]
        return {
            **gate,
            "blessed": False,
            "reason": f"training health: {w['kind'].replace('_', ' ')} at step {w.get('step')}",
        }
    baseline, note = _baseline(workdir, metric, metrics)
    gate["baseline"] = baseline
    if baseline is not None:
        allowed = baseline["value"] + tolerance * abs(baseline["value"])
        if value > allowed:
            return {
                **gate,
                "blessed": False,
                "reason": (
                    f"{metric}={value:.6g} is worse than exported version {baseline['version']} "
                    f"({baseline['value']:.6g}, tolerance {tolerance:g})"
                ),
            }
        note = f"not worse than exported version {baseline['version']} ({baseline['value']:.6g})"
    if memorisation.get("note", "").startswith("memorisation not checked"):
        note = f"{note}; {memorisation['note']}"
    return {
        **gate,
        "blessed": True,
        "reason": f"{metric}={value:.6g} <= threshold {threshold:.6g}; {note}",
    }


def check_blessing(workdir, max_near_copy_share: float | None = None) -> tuple[bool, str]:
    """(blessed, reason) for the model evaluated in workdir/evaluate/metrics.json.

    The comparison with the exported version is redone now, so a version
    exported after the evaluation is taken into account. The memorisation rule is the one
    recorded in metrics.json's gate, or `max_near_copy_share` when given (the export stage's
    config.evaluate.max_near_copy_share): a metrics.json from before the rule (no record) is
    then judged by it, and refused if it has no measure. Given neither, a metrics.json without
    a record was decided before the rule existed, and the reason says it was not checked.
    """
    path = workdir_layout.metrics_path(workdir)
    if not path.exists():
        return False, f"{path} is missing: run the evaluate stage first"
    try:
        metrics = atomic.read_json(path)
        gate = metrics["gate"]
        metric = gate["metric"]
        if metric not in GATE_METRICS:
            raise ValueError(f"unknown gate metric {metric!r}")
        threshold = math.inf if gate["threshold"] is None else float(gate["threshold"])
        tolerance = float(gate.get("baseline_tolerance", 0.0))
        recorded = gate.get("memorisation")
        if max_near_copy_share is not None:
            share = check_near_copy_threshold(max_near_copy_share)
        elif recorded is None:
            share = None  # decided before the rule existed
        else:
            stored = recorded["threshold"]
            share = check_near_copy_threshold(
                math.inf if stored is None else stored, "the recorded max_near_copy_share"
            )
        decision = decide_gate(
            metrics, metric, threshold, workdir, tolerance, math.inf if share is None else share
        )
    except (OSError, ValueError, KeyError, TypeError) as e:
        return False, f"{path} is unreadable or has no gate ({type(e).__name__}: {e})"
    reason = decision["reason"]
    if share is None and decision["blessed"]:
        reason += (
            "; memorisation not checked: metrics.json has no memorisation rule (evaluated "
            "before it existed)"
        )
    return decision["blessed"], reason
