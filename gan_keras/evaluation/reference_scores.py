"""Scores of known generators under the pipeline's own judge, to place a model on a scale.

`gan_keras/reference_scores.json` (package data) holds a list of entries that
`benchmarks.quality` writes, e.g. the article's DCGAN:

    {"judge_fingerprint": "<DomainClassifier fingerprint>", "num_samples": 5000,
     "name": "article DCGAN", "images": 300000, "frechet_distance": 8.3,
     "frechet_distance_std": 0.4, "seeds": 3, "command": "python -m benchmarks.quality ..."}

An entry applies only to a Frechet distance measured with the same judge (the
fingerprint covers the ingested data and the classifier's recipe) and the same
number of samples (FD is biased by the sample count), so `lookup` matches on
both and nothing else.
"""

import importlib.resources
import json
import pathlib

REFERENCE_FILE = "reference_scores.json"
REQUIRED_FIELDS = ("judge_fingerprint", "num_samples", "name", "frechet_distance")


def load(path=None) -> list[dict]:
    """Every entry of the reference file (the packaged one unless `path`); ValueError if bad."""
    source = (
        pathlib.Path(path)
        if path is not None
        else importlib.resources.files("gan_keras.evaluation") / REFERENCE_FILE
    )
    with source.open(encoding="utf-8") as f:
        entries = json.load(f)
    if not isinstance(entries, list):
        raise ValueError(f"{source} must hold a JSON list of entries, got {type(entries).__name__}")
    for i, entry in enumerate(entries):
        missing = [k for k in REQUIRED_FIELDS if not isinstance(entry, dict) or k not in entry]
        if missing:
            raise ValueError(f"{source}: entry {i} lacks {', '.join(missing)}")
    return entries


def lookup(judge_fingerprint: str, num_samples: int, path=None) -> list[dict]:
    """The entries measured with this judge at this sample count, in file order."""
    return [
        entry
        for entry in load(path)
        if entry["judge_fingerprint"] == judge_fingerprint
        and int(entry["num_samples"]) == int(num_samples)
    ]
