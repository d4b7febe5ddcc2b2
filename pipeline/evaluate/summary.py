"""The one-line quality summary of metrics.json: the model's FD placed on a scale.

One concern, words for people: `quality_summary(metrics)` puts the model's Frechet distance
between the real-data floor, the reference generators scored with the same judge and sample
count, and the noise ceiling (the numbers come from pipeline.evaluate.scoring).
"""


def _number(x: float) -> str:
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.3g}" if abs(x) >= 1 else f"{x:.2g}"


def _count(n) -> str:
    n = float(n)
    return f"{n / 1e6:.3g}M" if n >= 1e6 else f"{n / 1e3:.3g}k" if n >= 1e3 else f"{n:.0f}"


def _reference_label(entry: dict) -> str:
    images = entry.get("images")
    return (
        f"{entry['name']} ({_count(images)} images)"
        if isinstance(images, (int, float))
        else entry["name"]
    )


def quality_summary(metrics: dict) -> str:
    """One line placing the model's FD between the real floor, the reference generators and noise,
    e.g. 'FD 7.9: real-data floor 0.32, article DCGAN (300k images) 8.3, noise 95; 0.95x the
    article DCGAN (300k images); checkpoint step 3500 (best by in-training FD), 5000 samples,
    domain_classifier features'."""
    fd = metrics["frechet_distance"]
    references = metrics.get("references", {})
    scale = [("real-data floor", references["real_floor"]["frechet_distance"])]
    models = sorted(references.get("reference_models", []), key=lambda e: e["frechet_distance"])
    scale += [(_reference_label(e), e["frechet_distance"]) for e in models]
    scale.append(("noise", references["noise_ceiling"]["frechet_distance"]))
    line = f"{metrics.get('distance_name', 'FD')} {_number(fd)}: " + ", ".join(
        f"{name} {_number(value)}" for name, value in scale
    )
    ratios = [
        f"{fd / e['frechet_distance']:.2g}x the {_reference_label(e)}"
        for e in models
        if e["frechet_distance"] > 0
    ]
    if ratios:
        line += "; " + ", ".join(ratios)
    elif not models:
        line += "; no reference generator scored with this judge and sample count"
    model = metrics.get("model") or {}
    context = [f"{metrics['num_samples']} samples, {metrics.get('extractor', 'judge')} features"]
    if metrics.get("extractor") == "keras_inception_v3":
        context.append("not comparable with published FID")
    if model.get("checkpoint_step") is not None:
        context.insert(
            0, f"checkpoint step {model['checkpoint_step']} ({model.get('checkpoint', '?')})"
        )
    return f"{line}; {', '.join(context)}"
