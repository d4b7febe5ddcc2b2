"""The judge: one domain classifier per workdir, and the protocol every score follows.

The train stage's in-training evaluation (`train.eval_every`), the evaluate
stage and benchmarks.quality all score generators the same way: the same
classifier (trained on the ingested train split with `config.evaluate`'s
recipe, cached in <workdir>/judge/ and retrained only when the data or the
recipe changes), the same real eval images, the same latent codes and labels
for a given seed. This module is that shared part; pipeline.evaluate adds the
full metric set and pipeline.gate the export decision.
"""

import hashlib
import pathlib
from typing import NamedTuple

import numpy as np
from absl import logging

from gan_keras.data import records
from gan_keras.evaluation import feature_extractors
from gan_keras.evaluation import feature_scores as metrics_lib
from pipeline import workdir as workdir_layout


def is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def field_checker(ev):
    """need(condition, field, message): raises ValueError naming config.evaluate.<field>."""

    def need(cond, field, msg):
        if not cond:
            raise ValueError(f"config.evaluate.{field}={getattr(ev, field, None)!r}: {msg}")

    return need


def validate_judge_config(config) -> None:
    """Checks the `config.evaluate` fields the judge and its scores use (the train stage's
    in-training evaluation uses them too); raises ValueError naming the field."""
    ev = config.evaluate
    need = field_checker(ev)
    need(
        is_int(ev.classifier_epochs) and ev.classifier_epochs >= 1,
        "classifier_epochs",
        "must be an integer >= 1",
    )
    need(
        is_int(ev.classifier_batch_size) and ev.classifier_batch_size >= 1,
        "classifier_batch_size",
        "must be an integer >= 1",
    )
    need(
        is_int(ev.classifier_min_steps) and ev.classifier_min_steps >= 0,
        "classifier_min_steps",
        "must be an integer >= 0",
    )
    need(is_int(ev.kid_subsets) and ev.kid_subsets >= 1, "kid_subsets", "must be an integer >= 1")
    need(
        is_int(ev.kid_subset_size) and ev.kid_subset_size >= 2,
        "kid_subset_size",
        "must be an integer >= 2",
    )
    need(is_int(ev.seed), "seed", "must be an integer")
    need(
        is_int(ev.sample_batch_size) and ev.sample_batch_size >= 1,
        "sample_batch_size",
        "must be an integer >= 1",
    )
    need(
        is_int(ev.max_real_examples) and ev.max_real_examples >= 2,
        "max_real_examples",
        "must be an integer >= 2",
    )


def ingest_fingerprint(workdir) -> str:
    """Content hash of the ingested data: the classifier is retrained when it changes."""
    ingest = workdir_layout.ingest_dir(workdir)
    digest = hashlib.sha256()
    paths = [
        pathlib.Path(p)
        for split in (records.TRAIN, records.EVAL)
        for p in records.list_shards(ingest, split)
    ]
    paths += [p for p in (ingest / records.LABELS_FILE,) if p.exists()]
    for path in paths:
        digest.update(path.name.encode() + b"\0" + feature_extractors.sha256_file(path).encode())
    return digest.hexdigest()


class RealData(NamedTuple):
    """The ingested splits as uint8 images [N, H, W, C] and int64 labels [N]."""

    train_images: np.ndarray
    train_labels: np.ndarray
    eval_images: np.ndarray
    eval_labels: np.ndarray


def read_real_data(config, workdir) -> RealData:
    """Both ingested splits, at most `evaluate.max_real_examples` images each, read once."""
    from gan_keras.data import input_pipeline

    limit = config.evaluate.max_real_examples
    ingest_dir = workdir_layout.ingest_dir(workdir)
    train_images, train_labels = input_pipeline.read_split(ingest_dir, records.TRAIN, limit=limit)
    eval_images, eval_labels = input_pipeline.read_split(ingest_dir, records.EVAL, limit=limit)
    if train_images.shape[1:] != eval_images.shape[1:]:
        raise ValueError(
            f"ingested train and eval images differ in shape: {train_images.shape[1:]} vs "
            f"{eval_images.shape[1:]}"
        )
    return RealData(train_images, train_labels, eval_images, eval_labels)


def load_judge(
    config, workdir, real: RealData | None = None
) -> feature_extractors.DomainClassifier:
    """The judge of `workdir`: the domain classifier trained on its ingested train split with
    `config.evaluate`'s recipe, cached in <workdir>/judge/ (trained and cached on first use).

    The train stage's in-training evaluation and the evaluate stage both call this, so they
    share one classifier; it is retrained only when the ingested data or the recipe changes.
    """
    real = real if real is not None else read_real_data(config, workdir)
    ev = config.evaluate
    return feature_extractors.DomainClassifier.train_or_load(
        workdir_layout.judge_dir(workdir),
        real.train_images,
        real.train_labels,
        real.eval_images,
        real.eval_labels,
        data_fingerprint=ingest_fingerprint(workdir),
        epochs=ev.classifier_epochs,
        batch_size=ev.classifier_batch_size,
        seed=ev.seed,
        min_steps=ev.classifier_min_steps,
        log=logging.info,
    )


class JudgeScorer:
    """Frechet distance and KID of generated images against the real eval split, in the judge's
    features; the real side is embedded once, so repeated scoring (every `train.eval_every`
    steps) costs only the samples' features."""

    def __init__(
        self, config, judge: feature_extractors.FeatureExtractor, real_eval_images: np.ndarray
    ):
        ev = config.evaluate
        self.judge = judge
        self.real_features = judge.features(real_eval_images)
        self.real_statistics = metrics_lib.gaussian_statistics(self.real_features)
        self._kid_args = {
            "kid_subsets": ev.kid_subsets,
            "kid_subset_size": ev.kid_subset_size,
            "seed": ev.seed,
        }
        self._pr_k = ev.pr_k
        self._real_radii = None

    def score(self, fake_images: np.ndarray, with_precision_recall: bool = False) -> dict:
        """FD and KID (and, when asked, improved precision and recall with k = evaluate.pr_k,
        the real side's k-NN radii computed once) of `fake_images`."""
        if with_precision_recall and self._real_radii is None:
            self._real_radii = metrics_lib.knn_radii(self.real_features, self._pr_k)
        scores = metrics_lib.feature_scores(
            self.judge.features(fake_images),
            self.real_features,
            **self._kid_args,
            pr_k=self._pr_k if with_precision_recall else None,
            real_radii=self._real_radii,
            real_statistics=self.real_statistics,
        )
        return {**scores, "num_samples": len(fake_images)}


def balanced_labels(num: int, num_classes: int, seed: int) -> np.ndarray:
    """Labels uniform over classes: each class num/K times (+-1), in a seeded random order."""
    labels = np.arange(num) % num_classes
    return np.random.default_rng([seed, 1]).permutation(labels).astype(np.int32)


def sample_latents(num: int, latent_dim: int, seed: int) -> np.ndarray:
    """The latents every scoring of `num` samples with `seed` uses (float32 [num, latent_dim])."""
    return np.random.default_rng([seed, 0]).standard_normal((num, latent_dim)).astype(np.float32)
