"""Ingest stage: the statistics of a run (stats.json's pipeline-computed part), combined in
one Beam CombineFn (`IngestStatsFn`) from tagged events and made JSON-ready by `summarize`."""

import collections
import math

import apache_beam as beam

from gan_keras.data import records

# Events the statistics are combined from, one per batch / rejection.
INPUTS, RECORDS, REJECTED = "inputs", "records", "rejected"


class IngestStatsFn(beam.CombineFn):
    """Inputs read, counts per split and class, exact pixel sums, input size
    range and rejects per reason, all in one combine.

    Inputs are tagged events: (INPUTS, number read), (RECORDS, list of
    Records) or (REJECTED, reason); batches keep it one call per work item.
    """

    def create_accumulator(self):
        return {
            "inputs": 0,
            "rejected": {},
            "counts": {},
            "sum": None,
            "sumsq": None,
            "height": None,
            "width": None,
        }

    @staticmethod
    def _range(r, value):
        return (value, value) if r is None else (min(r[0], value), max(r[1], value))

    @staticmethod
    def _add(a, b):
        return (
            b
            if a is None
            else (a if b is None else tuple(x + y for x, y in zip(a, b, strict=True)))
        )

    def add_input(self, acc, event):
        kind, value = event
        if kind == INPUTS:
            acc["inputs"] += value
        elif kind == REJECTED:
            acc["rejected"][value] = acc["rejected"].get(value, 0) + 1
        else:
            for record in value:
                key = (record.split, record.label)
                acc["counts"][key] = acc["counts"].get(key, 0) + 1
                acc["sum"] = self._add(acc["sum"], record.pixel_sum)
                acc["sumsq"] = self._add(acc["sumsq"], record.pixel_sumsq)
                acc["height"] = self._range(acc["height"], record.input_height)
                acc["width"] = self._range(acc["width"], record.input_width)
        return acc

    def merge_accumulators(self, accumulators):
        out = self.create_accumulator()
        for acc in accumulators:
            out["inputs"] += acc["inputs"]
            for field in ("rejected", "counts"):
                for key, n in acc[field].items():
                    out[field][key] = out[field].get(key, 0) + n
            out["sum"] = self._add(out["sum"], acc["sum"])
            out["sumsq"] = self._add(out["sumsq"], acc["sumsq"])
            for dim in ("height", "width"):
                if acc[dim] is not None:
                    out[dim] = self._range(self._range(out[dim], acc[dim][0]), acc[dim][1])
        return out

    def extract_output(self, acc):
        return acc


def summarize(acc, resolution):
    """The pipeline-computed part of stats.json (JSON-ready)."""
    splits = {}
    for split in records.SPLITS:
        per_class = {str(label): n for (s, label), n in sorted(acc["counts"].items()) if s == split}
        splits[split] = {"count": sum(per_class.values()), "per_class": per_class}
    per_class = collections.Counter()
    for (_, label), n in acc["counts"].items():
        per_class[str(label)] += n
    num_records = sum(acc["counts"].values())
    mean = std = None
    if num_records:
        n = num_records * resolution * resolution
        mean = [s / n for s in acc["sum"]]
        std = [math.sqrt(max(q / n - m * m, 0.0)) for q, m in zip(acc["sumsq"], mean, strict=True)]
    return {
        "inputs_read": acc["inputs"],
        "records_written": num_records,
        "rejected": sum(acc["rejected"].values()),
        "rejected_by_reason": dict(sorted(acc["rejected"].items())),
        "splits": splits,
        "per_class": dict(sorted(per_class.items(), key=lambda kv: int(kv[0]))),
        "pixel_mean": mean,
        "pixel_std": std,
        "input_height": None
        if acc["height"] is None
        else {"min": acc["height"][0], "max": acc["height"][1]},
        "input_width": None
        if acc["width"] is None
        else {"min": acc["width"][0], "max": acc["width"][1]},
    }
