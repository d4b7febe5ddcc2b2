"""Scores a `SampleFn` against the real eval split: FD, KID, precision/recall, references.

Samples `config.evaluate.num_samples` images from a `SampleFn` and
compares them with the real eval split in the feature space of an extractor
(`gan_keras.evaluation.feature_extractors`): Frechet distance, KID, classifier score and
improved precision/recall, next to two reference points computed the same
way: the real floor (real train images vs real eval) and a noise ceiling
(uniform noise vs real eval). Conditional models also get per-class Frechet
distances (intra-FID) and the classifier's accuracy on the requested labels.

The domain classifier (the "judge", pipeline.judge) is trained once per
workdir and shared with the train stage's in-training evaluation. metrics.json
places the model on a scale, in `summary`: the real floor, the reference
generators that `gan_keras/reference_scores.json` holds for the same judge and
sample count (e.g. the article's DCGAN, scored by benchmarks.quality) and the
noise ceiling (the line is pipeline.evaluate.summary's).

One concern: `compute_metrics(config, workdir, sample_fn, ...)`, the metrics dict for any
sample_fn (pipeline.evaluate.sample_fns); no gate, and nothing written but the judge's cache.
"""

import time

import numpy as np
from absl import logging

from gan_keras import progress
from gan_keras.data import records
from gan_keras.evaluation import feature_extractors, reference_scores
from gan_keras.evaluation import feature_scores as metrics_lib
from pipeline import classes, judge
from pipeline import workdir as workdir_layout
from pipeline.evaluate.sample_fns import SampleFn
from pipeline.evaluate.summary import quality_summary

# Images per feature-extraction call: a progress line can come between two (a multiple of the
# extractors' batch sizes, so only the last chunk has a batch of its own shape).
_EMBED_CHUNK = 2560


def _uniform_noise(num: int, shape, seed: int) -> np.ndarray:
    return np.random.default_rng([seed, 2]).integers(0, 256, size=(num, *shape), dtype=np.uint8)


def _score(config, fake_features, real_features, fake_probs, real_radii=None) -> dict:
    ev = config.evaluate
    result = {
        **metrics_lib.feature_scores(
            fake_features,
            real_features,
            kid_subsets=ev.kid_subsets,
            kid_subset_size=ev.kid_subset_size,
            seed=ev.seed,
            pr_k=ev.pr_k,
            real_radii=real_radii,
        ),
        "classifier_score": None,
        "classifier_score_std": None,
    }
    if fake_probs is not None:
        splits = min(ev.classifier_score_splits, len(fake_probs))
        result["classifier_score"], result["classifier_score_std"] = metrics_lib.classifier_score(
            fake_probs, splits=splits
        )
    return result


def compute_metrics(
    config,
    workdir,
    sample_fn: SampleFn,
    *,
    conditional: bool,
    num_classes: int | None = None,
    model_info: dict | None = None,
    return_samples: bool = False,
):
    """Scores `sample_fn` against workdir's real eval split (no gate; writes only the judge's
    cache).

    Returns the metrics dict (and the generated uint8 samples if `return_samples`).
    """
    ev = config.evaluate
    start_time = time.time()
    real = judge.read_real_data(config, workdir)
    train_images, eval_images, eval_labels = real.train_images, real.eval_images, real.eval_labels
    image_shape = eval_images.shape[1:]
    if len(eval_images) <= ev.pr_k:
        raise ValueError(
            f"the eval split has {len(eval_images)} images; precision/recall needs more than "
            f"config.evaluate.pr_k={ev.pr_k}"
        )

    classifier = judge.load_judge(config, workdir, real)
    skipped = {}
    extractor = classifier
    if ev.extractor == "keras_inception_v3":
        try:
            extractor = feature_extractors.KerasInceptionV3Extractor(ev.inception_weights)
        except feature_extractors.ExtractorUnavailable as e:
            logging.warning("%s. Falling back to the domain classifier's features.", e)
            skipped["keras_inception_v3"] = str(e)
    elif ev.extractor == "fid_inception":
        extractor = feature_extractors.FidInceptionExtractor(ev.fid_inception_graph)

    labels = None
    if conditional:
        if eval_labels.min() < 0:
            raise ValueError(
                "a conditional model is evaluated per class, but the eval split is unlabelled"
            )
        num_classes = classes.resolve_num_classes(
            workdir_layout.ingest_dir(workdir),
            conditional=True,
            num_classes=num_classes or config.model.num_classes,
            eval_labels=eval_labels,
        )
        labels = judge.balanced_labels(ev.num_samples, num_classes, ev.seed)
    logging.info("Sampling %d images from the generator", ev.num_samples)
    fake_images = np.asarray(sample_fn(ev.num_samples, ev.seed, labels))
    if fake_images.dtype != np.uint8 or fake_images.shape != (ev.num_samples, *image_shape):
        raise ValueError(
            f"the generator produced {fake_images.dtype} images of shape {fake_images.shape}; "
            f"expected uint8 {(ev.num_samples, *image_shape)} like the ingested data"
        )

    def embed(x, name):
        """(extractor features, domain-classifier class probabilities or None), in chunks that
        give a progress line (features do not depend on the chunking)."""
        log = progress.ProgressLog(f"evaluate: {extractor.name} features of {name}", len(x))
        features, probs = [], []
        for start in range(0, len(x), _EMBED_CHUNK):
            chunk = x[start : start + _EMBED_CHUNK]
            chunk_features, chunk_probs = classifier.predict(chunk)
            if extractor is not classifier:
                chunk_features = extractor.predict(chunk)[0]
            features.append(chunk_features)
            probs.append(chunk_probs)
            log.add(len(chunk))
        return np.concatenate(features), (None if probs[0] is None else np.concatenate(probs))

    real_features, _ = embed(eval_images, "real eval images")
    # The real set's k-NN radii serve the model and both reference points.
    real_radii = metrics_lib.knn_radii(real_features, ev.pr_k)
    fake_features, fake_probs = embed(fake_images, "samples")
    result = _score(config, fake_features, real_features, fake_probs, real_radii)

    # Reference points, same extractor, same sample count where possible.
    floor_idx = np.random.default_rng([ev.seed, 3]).permutation(len(train_images))[: ev.num_samples]
    floor_images = train_images[floor_idx]
    noise_images = _uniform_noise(ev.num_samples, image_shape, ev.seed)
    references = {}
    for name, description, reference_images in [
        ("real_floor", "real train subset vs real eval", floor_images),
        ("noise_ceiling", "uniform noise images vs real eval", noise_images),
    ]:
        features, probs = embed(reference_images, name.replace("_", " "))
        references[name] = {
            "description": description,
            "num_samples": len(reference_images),
            **_score(config, features, real_features, probs, real_radii),
        }

    result.update(
        {
            "extractor": extractor.name,
            # "FID" only for the FID network's features; what the distance is, in words.
            "distance_name": extractor.distance_name,
            "frechet_distance_description": extractor.description,
            "extractor_fingerprint": extractor.fingerprint,
            "extractor_info": extractor.info,
            "skipped_extractors": skipped,
            "num_samples": int(ev.num_samples),
            "num_real": int(len(eval_images)),
            "num_real_train": int(len(train_images)),
            "image_shape": list(image_shape),
            "classifier": classifier.info,
            "classifier_eval_accuracy": classifier.eval_accuracy,
            "references": references,
            "conditional": bool(conditional),
            "model": model_info or {},
            "seed": int(ev.seed),
        }
    )
    if not classifier.has_class_probs:
        result["classifier_score_note"] = (
            "not computed: the data is unlabelled, so the domain classifier was trained on "
            "rotation "
            "prediction (0/90/180/270 degrees) instead of classes; its features are used for "
            "the distances"
        )
    if conditional:
        result.update(
            _conditional_metrics(
                fake_features,
                real_features,
                fake_probs,
                labels,
                eval_labels,
                num_classes,
                records.read_label_names(workdir_layout.ingest_dir(workdir)),
            )
        )
    _add_reference_models(result)
    result["summary"] = quality_summary(result)
    result["seconds"] = round(time.time() - start_time, 3)
    return (result, fake_images) if return_samples else result


def _add_reference_models(result: dict) -> None:
    """references.reference_models: the packaged reference scores for this judge and sample count,
    or a `references_note` saying why there are none."""
    try:
        entries = reference_scores.lookup(result["extractor_fingerprint"], result["num_samples"])
    except (OSError, ValueError) as e:
        logging.warning("Reference scores unreadable: %s", e)
        result["references_note"] = f"reference scores unreadable: {e}"
        return
    if entries:
        result["references"]["reference_models"] = entries
    else:
        result["references_note"] = (
            f"no reference generator scored with this judge ({result['extractor']} "
            f"{result['extractor_fingerprint'][:12]}) at {result['num_samples']} samples in "
            f"gan_keras/{reference_scores.REFERENCE_FILE} (benchmarks.quality writes them)"
        )


def _conditional_metrics(
    fake_features, real_features, fake_probs, labels, eval_labels, num_classes, class_names
) -> dict:
    per_class, skipped = {}, {}
    for c in range(num_classes):
        name = str(class_names[c]) if c < len(class_names) else str(c)
        fake_c, real_c = fake_features[labels == c], real_features[eval_labels == c]
        if len(fake_c) < 2 or len(real_c) < 2:
            skipped[name] = (
                f"{len(fake_c)} generated and {len(real_c)} real eval images (need >= 2 each)"
            )
            continue
        per_class[name] = metrics_lib.frechet_distance(fake_c, real_c)
    out = {
        "intra_frechet_distance": float(np.mean(list(per_class.values()))) if per_class else None,
        "per_class_frechet_distance": per_class,
        "per_class_skipped": skipped,
        "generated_label_accuracy": None,
    }
    if fake_probs is not None:
        # Probabilities of the domain classifier over the data's classes (labelled mode only).
        out["generated_label_accuracy"] = float(np.mean(np.argmax(fake_probs, axis=1) == labels))
    return out
