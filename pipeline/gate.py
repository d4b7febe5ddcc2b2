"""The export gate (TFX Evaluator's "blessing"): may this model replace the exported one?

Blessed when `evaluate.gate_metric` <= `evaluate.threshold` (lower is better)
and the model is not worse than the currently exported version (its
<version>/assets.extra/evaluation.json), compared only when both were measured
with the same feature extractor (same fingerprint). The evaluate stage decides
it into metrics.json; the export stage decides again just before exporting, so
a version exported in between counts.
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
    metrics: dict, metric: str, threshold: float, workdir, tolerance: float = 0.0
) -> dict:
    """{'blessed', 'metric', 'value', 'threshold', 'baseline', 'reason'} (lower is better).

    `threshold` is a number or +inf (no threshold), `tolerance` a number >= 0: anything else
    (NaN, -inf) raises ValueError, since every comparison with NaN is false and -inf cannot be
    written to JSON, where +inf is stored as null."""
    if math.isnan(threshold) or threshold == -math.inf:
        raise ValueError(f"the gate threshold must be a number or inf, not {threshold}")
    if not _is_number(tolerance) or tolerance < 0:
        raise ValueError(f"the gate's baseline tolerance must be a number >= 0, not {tolerance}")
    value = metrics.get(metric)
    # An infinite threshold (no threshold) is stored as null: JSON has no Infinity.
    gate = {
        "metric": metric,
        "value": value,
        "threshold": float(threshold) if math.isfinite(threshold) else None,
        "baseline": None,
        "baseline_tolerance": float(tolerance),
    }
    if not _is_number(value):
        return {**gate, "blessed": False, "reason": f"{metric} is {value!r}, not a finite number"}
    if value > threshold:
        return {
            **gate,
            "blessed": False,
            "reason": f"{metric}={value:.6g} is above the threshold {threshold:.6g}",
        }
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
    return {
        **gate,
        "blessed": True,
        "reason": f"{metric}={value:.6g} <= threshold {threshold:.6g}; {note}",
    }


def check_blessing(workdir) -> tuple[bool, str]:
    """(blessed, reason) for the model evaluated in workdir/evaluate/metrics.json.

    The comparison with the exported version is redone now, so a version
    exported after the evaluation is taken into account.
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
        decision = decide_gate(metrics, metric, threshold, workdir, tolerance)
    except (OSError, ValueError, KeyError, TypeError) as e:
        return False, f"{path} is unreadable or has no gate ({type(e).__name__}: {e})"
    return decision["blessed"], decision["reason"]
