"""Ingest stage: images -> sharded GZIP TFRecords, statistics and a rejects report.

An Apache Beam pipeline (DirectRunner unless ``beam_pipeline_args`` name
another runner, e.g. --runner=FlinkRunner):

    plan (driver: list files / read headers) -> Create(work items)
      -> Read -> Preprocess --records--> AssignSplit -> KeyByShard -> GroupByKey -> WriteShard
          |         |                       `----------.
          |         `--rejected--> ToList -> rejected.jsonl
          `---------------------------------------------+-> CombineGlobally(IngestStatsFn) -> stats

Everything goes into `out_dir`, in the layout gan_keras.data.records describes
(shards, stats.json, labels.json, rejected.jsonl). The parts live apart:
pipeline.ingest.config_checks checks config.data, pipeline.ingest.sources plans and
reads the sources, pipeline.ingest.preprocess turns one input into one record,
pipeline.ingest.statistics combines the statistics, and this module wires them into
the Beam graph and runs it.
`python -m pipeline.ingest` runs the stage on its own (pipeline.ingest).

Hidden files and folders (names starting with '.', e.g. .DS_Store) are
ignored; every other input is either written or rejected with a reason
(e.g. unsupported_extension), never dropped silently.
"""

import collections
import hashlib
import json
import logging
import math
import shlex
import threading
import time
import uuid

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions
from apache_beam.runners.runner import PipelineState

from gan_keras import progress
from gan_keras.data import records
from gan_keras.data.records import EVAL, TRAIN, shard_name, write_tfrecord
from gan_keras.storage import atomic, filesystem
from pipeline.ingest import config_checks, sources
from pipeline.ingest.preprocess import PreprocessOptions, Rejection, allow_max_pixels, preprocess
from pipeline.ingest.statistics import INPUTS, RECORDS, REJECTED, IngestStatsFn, summarize

# Aim for shards of about this many records when data.num_shards is 0.
RECORDS_PER_SHARD = 15_000
_METRICS_NAMESPACE = "ingest"
# The pipeline's statistics, merged into stats.json by the driver.
SUMMARY_FILE = ".summary.json"


class IngestError(RuntimeError):
    """The stage ran but its output must not be used (too many rejects, no train data)."""


# --- where a record goes ----------------------------------------------------


def hash_split(source_id, eval_fraction):
    """Deterministic split from the source id alone (stable across runs/workers)."""
    digest = hashlib.sha256(source_id.encode("utf-8")).digest()
    return EVAL if int.from_bytes(digest[:8], "big") / 2.0**64 < eval_fraction else TRAIN


def shard_index(source_id, num_shards):
    """Deterministic shard of a record (other hash bytes than the split's)."""
    digest = hashlib.sha256(source_id.encode("utf-8")).digest()
    return int.from_bytes(digest[8:16], "big") % num_shards


def assign_split(record, eval_fraction):
    if record.split is not None:
        return record
    return record._replace(split=hash_split(record.source_id, eval_fraction))


def rejection_json(rejection):
    return json.dumps(rejection._asdict(), sort_keys=True)


# --- the Beam pipeline ------------------------------------------------------
#
# Elements are *batches*: one list per work item (a chunk of an array source,
# or a group of files), down to the shard writers. Beam's per-element cost in
# Python (several DoFn hops, plus encoding through the GroupByKey that
# WriteToTFRecord needs for a fixed shard count) measured ~60 us per image,
# as much as the real work on a 28x28 image. So records are grouped per
# (split, shard) within a batch, shuffled as such, and the shard writer
# frames TFRecords itself. The work items are numerous enough that workers
# still share the load evenly.


def _counter(name):
    return beam.metrics.Metrics.counter(_METRICS_NAMESPACE, name)


# Progress of an ingest run whose workers share the driver's process (the default in-process
# runner, whose run() returns only when the job is done): one line per interval from all the
# DoFn instances of that run. Other runners' progress is polled from their counters
# (`_poll_progress`).
_PROGRESS: dict[str, progress.ProgressLog] = {}
_PROGRESS_LOCK = threading.Lock()


def _run_progress(run_id: str, total: int) -> progress.ProgressLog:
    with _PROGRESS_LOCK:
        if run_id not in _PROGRESS:
            _PROGRESS[run_id] = progress.ProgressLog("ingest", total, unit="inputs")
        return _PROGRESS[run_id]


class ReadFn(beam.DoFn):
    """Work item -> list of RawInputs, with the source's reader."""

    def __init__(self, reader):
        self._reader = reader
        self._inputs = _counter("inputs_read")

    def setup(self):
        self._reader.setup()

    def process(self, item):
        batch = list(self._reader.read(item))
        self._inputs.inc(len(batch))
        yield batch


class PreprocessFn(beam.DoFn):
    """Decode, convert, resize, encode a batch; rejects go to the 'rejected' output."""

    REJECTED = "rejected"

    def __init__(self, opts, progress_run: str | None = None, progress_total: int = 0):
        self._opts = opts
        self._rejected = _counter("rejected")
        self._by_reason = {}
        # (run id, number of inputs) when this process logs the run's progress.
        self._progress_run, self._progress_total = progress_run, progress_total
        self._progress = None

    def setup(self):
        allow_max_pixels(self._opts.max_pixels)
        if self._progress_run:
            self._progress = _run_progress(self._progress_run, self._progress_total)

    def process(self, raw_batch):
        kept = []
        for raw in raw_batch:
            out = preprocess(raw, self._opts)
            if isinstance(out, Rejection):
                self._rejected.inc()
                if out.reason not in self._by_reason:
                    self._by_reason[out.reason] = _counter(f"rejected_{out.reason}")
                self._by_reason[out.reason].inc()
                yield beam.pvalue.TaggedOutput(self.REJECTED, out)
            else:
                kept.append(out)
        # Once per batch, not per image: a lock and a clock read.
        if self._progress is not None:
            self._progress.add(
                len(raw_batch), records=len(kept), rejected=len(raw_batch) - len(kept)
            )
        yield kept


class AssignSplitFn(beam.DoFn):
    def __init__(self, eval_fraction):
        self._eval_fraction = eval_fraction
        self._counters = {TRAIN: _counter("records_train"), EVAL: _counter("records_eval")}

    def process(self, batch):
        batch = [assign_split(record, self._eval_fraction) for record in batch]
        for split, counter in self._counters.items():
            counter.inc(sum(record.split == split for record in batch))
        yield batch


class KeyByShardFn(beam.DoFn):
    """Batch -> ((split, shard), (first source_id, [serialized examples])) per shard it touches."""

    def __init__(self, shards):
        self._shards = shards

    def process(self, batch):
        groups = {}
        for record in batch:
            key = (record.split, shard_index(record.source_id, self._shards[record.split]))
            groups.setdefault(key, (record.source_id, []))[1].append(record.example)
        yield from groups.items()


class WriteShardFn(beam.DoFn):
    """Writes one GZIP TFRecord shard from its grouped batches, atomically.

    Batches are written in source_id order, so a rerun produces byte-identical
    shards. A temp file renamed into place makes retried bundles harmless.
    """

    def __init__(self, out_dir, shards):
        self._out_dir, self._shards = out_dir, shards

    def process(self, element):
        from apache_beam.io.filesystems import FileSystems

        (split, shard), batches = element
        name = shard_name(split, shard, self._shards[split])
        final = FileSystems.join(self._out_dir, name)
        tmp = FileSystems.join(self._out_dir, f".{name}.tmp-{uuid.uuid4().hex}")
        written, started = 0, time.monotonic()
        with FileSystems.create(tmp, compression_type=CompressionTypes.GZIP) as f:
            for _, examples in sorted(batches, key=lambda batch: batch[0]):
                for example in examples:
                    write_tfrecord(f, example)
                written += len(examples)
        FileSystems.rename([tmp], [final])
        logging.info(
            "ingest: wrote %s (%d records, %.1f s)", name, written, time.monotonic() - started
        )
        yield name


def write_file(path, data: bytes):
    """Writes a whole file through Beam's FileSystems via a temp name and a rename."""
    from apache_beam.io.filesystems import FileSystems

    directory, name = FileSystems.split(path)
    tmp = FileSystems.join(directory, f".{name}.tmp-{uuid.uuid4().hex}")
    with FileSystems.create(tmp, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        f.write(data)
    FileSystems.rename([tmp], [path])
    return path


def _write_rejected(rejections, path):
    """rejected.jsonl, sorted by source_id so reruns compare equal."""
    lines = sorted((r.source_id, rejection_json(r)) for r in rejections)
    return write_file(path, "".join(line + "\n" for _, line in lines).encode("utf-8"))


def _write_summary(acc, path, resolution):
    return write_file(path, json.dumps(summarize(acc, resolution), sort_keys=True).encode("utf-8"))


class IngestTransform(beam.PTransform):
    """Work items -> TFRecord shards, rejected.jsonl and a stats JSON file."""

    def __init__(self, plan, opts, eval_fraction, shards, out_dir, progress_run=None):
        super().__init__()
        self._plan, self._opts = plan, opts
        self._eval_fraction, self._shards, self._out_dir = eval_fraction, shards, out_dir
        self._progress_run = progress_run

    def expand(self, work_items):
        out_dir = filesystem.path(self._out_dir)
        raw = work_items | "Read" >> beam.ParDo(ReadFn(self._plan.reader))
        preprocess_fn = PreprocessFn(self._opts, self._progress_run, self._plan.num_inputs)
        processed = raw | "Preprocess" >> beam.ParDo(preprocess_fn).with_outputs(
            PreprocessFn.REJECTED, main="records"
        )
        split_records = processed.records | "AssignSplit" >> beam.ParDo(
            AssignSplitFn(self._eval_fraction)
        )

        # Every shard gets an (empty) entry so that shards no record hashes to
        # are still written: readers can rely on all N files existing.
        all_shards = [
            ((split, i), ("", [])) for split, n in sorted(self._shards.items()) for i in range(n)
        ]
        (
            (
                split_records | "KeyByShard" >> beam.ParDo(KeyByShardFn(self._shards)),
                work_items.pipeline | "AllShards" >> beam.Create(all_shards),
            )
            | "FlattenShards" >> beam.Flatten()
            | "GroupShards" >> beam.GroupByKey()
            | "WriteShards" >> beam.ParDo(WriteShardFn(str(out_dir), self._shards))
        )

        rejected = processed[PreprocessFn.REJECTED]
        # Rejects are few by design (data.max_reject_fraction): one sorted file.
        (
            rejected
            | "CollectRejected" >> beam.combiners.ToList()
            | "WriteRejected" >> beam.Map(_write_rejected, str(out_dir / records.REJECTED_FILE))
        )

        events = (
            raw | "InputEvents" >> beam.Map(lambda batch: (INPUTS, len(batch))),
            split_records | "RecordEvents" >> beam.Map(lambda batch: (RECORDS, batch)),
            rejected | "RejectEvents" >> beam.Map(lambda rejection: (REJECTED, rejection.reason)),
        )
        return (
            events
            | "FlattenEvents" >> beam.Flatten()
            | "Stats" >> beam.CombineGlobally(IngestStatsFn())
            | "WriteSummary"
            >> beam.Map(_write_summary, str(out_dir / SUMMARY_FILE), self._opts.resolution)
        )


def choose_num_shards(plan, data_config):
    """Shards per split: data.num_shards for train (0 = ~RECORDS_PER_SHARD each),
    eval proportionally fewer, at least one each so readers always find files."""
    if plan.has_own_split:
        expected = dict(plan.split_sizes)
    else:
        n = plan.split_sizes[None]
        expected = {EVAL: n * data_config.eval_fraction, TRAIN: n * (1 - data_config.eval_fraction)}
    train = data_config.num_shards or max(1, math.ceil(expected[TRAIN] / RECORDS_PER_SHARD))
    if data_config.num_shards:
        eval_ = max(1, round(train * expected.get(EVAL, 0) / max(expected[TRAIN], 1)))
    else:
        eval_ = max(1, math.ceil(expected.get(EVAL, 0) / RECORDS_PER_SHARD))
    return {TRAIN: int(train), EVAL: int(eval_)}


def pipeline_options(data_config, beam_pipeline_args=None):
    args = list(beam_pipeline_args or []) + shlex.split(data_config.get("beam_pipeline_args", ""))
    return PipelineOptions(args)


def make_pipeline(options):
    """A Beam pipeline on the runner `options` name, the DirectRunner's batch engine by default.

    Without --runner we run Beam's FnApiRunner, which is what DirectRunner
    executes batch pipelines with (it honours --direct_num_workers and
    --direct_running_mode). Going through DirectRunner itself would first try
    the Prism runner, a binary Beam downloads from GitHub at run time: no
    network here, and a silently different runner where there is.
    """
    if options.view_as(StandardOptions).runner is None:
        from apache_beam.runners.portability.fn_api_runner import fn_runner

        return beam.Pipeline(runner=fn_runner.FnApiRunner(), options=options)
    return beam.Pipeline(options=options)


def run_ingest(data_config, out_dir, beam_pipeline_args=None) -> dict:
    """Runs the ingest pipeline into `out_dir` and returns the stats (stats.json).

    Raises ValueError for bad config or a missing/empty source (before any
    work), IngestError after writing the report when too many inputs were
    rejected or the train split is empty.
    """
    config_checks.validate_data_config(data_config)
    plan = sources.plan_source(
        data_config.source, data_config.tfds_data_dir, config_checks.label_names(data_config)
    )
    # A local directory or an object-store prefix: Beam's workers write the shards and the
    # reject report through FileSystems, the rest goes through the same layer.
    out_dir = filesystem.path(out_dir)
    filesystem.makedirs(out_dir)
    # Shards of an earlier run in the same directory would mix with ours.
    for stale in filesystem.glob(out_dir, records.shard_pattern()):
        filesystem.remove(stale)
    opts = PreprocessOptions.from_config(data_config)
    shards = choose_num_shards(plan, data_config)
    options = pipeline_options(data_config, beam_pipeline_args)
    logging.info(
        "Ingesting %d inputs from %s into %s (shards %s)",
        plan.num_inputs,
        data_config.source,
        out_dir,
        shards,
    )

    pipeline = make_pipeline(options)
    progress_run = uuid.uuid4().hex if _workers_in_this_process(options) else None
    _ = (
        pipeline
        | "WorkItems" >> beam.Create(plan.work_items, reshuffle=len(plan.work_items) > 1)
        | "Ingest"
        >> IngestTransform(
            plan, opts, float(data_config.eval_fraction), shards, str(out_dir), progress_run
        )
    )
    try:
        result = pipeline.run()
        if not PipelineState.is_terminal(result.state):
            _poll_progress(result, plan.num_inputs)
        result.wait_until_finish()
    finally:
        with _PROGRESS_LOCK:
            _PROGRESS.pop(progress_run, None)
    _log_metrics(result)

    summary = json.loads(filesystem.read_text(out_dir / SUMMARY_FILE))
    filesystem.remove(out_dir / SUMMARY_FILE)
    stats = {
        "source": data_config.source,
        "source_kind": plan.kind,
        "source_info": plan.info,
        "resolution": opts.resolution,
        "channels": opts.channels,
        "num_classes": len(plan.label_names),
        "label_names": plan.label_names,
        "split_method": "source" if plan.has_own_split else "hash",
        "eval_fraction": None if plan.has_own_split else float(data_config.eval_fraction),
        "num_shards": shards,
        "files": {
            split: sorted(p.name for p in filesystem.glob(out_dir, records.shard_pattern(split)))
            for split in records.SPLITS
        },
        **summary,
    }
    atomic.atomic_write_json(out_dir / records.LABELS_FILE, plan.label_names)
    atomic.atomic_write_json(out_dir / records.STATS_FILE, stats)
    _check_outcome(stats, data_config, out_dir)
    return stats


def validate_config(config) -> None:
    """The stage's validation hook (pipeline.stages): checks `config.data`, reads no images."""
    config_checks.validate_data_config(config.data)


def run(context) -> dict:
    """The stage as the runner calls it: `run_ingest` into context.out_dir."""
    return run_ingest(context.config.data, context.out_dir, list(context.beam_pipeline_args))


def _check_outcome(stats, data_config, out_dir):
    read, written, rejected = stats["inputs_read"], stats["records_written"], stats["rejected"]
    if read != written + rejected:
        raise IngestError(
            f"ingest lost inputs: read {read} but wrote {written} and rejected {rejected}"
        )
    fraction = rejected / read if read else 0.0
    if fraction > data_config.max_reject_fraction:
        raise IngestError(
            f"{rejected} of {read} inputs ({fraction:.2%}) were rejected, more than "
            f"data.max_reject_fraction={data_config.max_reject_fraction}; reasons "
            f"{stats['rejected_by_reason']}, "
            f"details in {out_dir / records.REJECTED_FILE}"
        )
    if stats["splits"][TRAIN]["count"] == 0:
        raise IngestError(
            f"the train split is empty ({read} inputs read, {rejected} rejected); see "
            f"{out_dir / records.STATS_FILE}"
        )


def _workers_in_this_process(options) -> bool:
    """Whether the DoFns run in this process: the default in-process runner, not multi-process."""
    return options.view_as(StandardOptions).runner is None and options.view_as(
        DirectOptions
    ).direct_running_mode in ("in_memory", "multi_threading")


def _counter_totals(result, attempted: bool = False) -> collections.Counter:
    counters = result.metrics().query(
        beam.metrics.MetricsFilter().with_namespace(_METRICS_NAMESPACE)
    )["counters"]
    totals = collections.Counter()
    for counter in counters:
        totals[counter.key.metric.name] += (
            counter.attempted if attempted else counter.committed
        ) or 0
    return totals


def _poll_progress(result, total: int) -> None:
    """Progress from the runner's counters while a job runs elsewhere (run() returned early)."""
    log = progress.ProgressLog("ingest", total, unit="inputs")
    while not PipelineState.is_terminal(result.state):
        time.sleep(progress.INTERVAL_S)
        try:
            totals = _counter_totals(result, attempted=True)
        except Exception:  # noqa: BLE001 - not every runner reports metrics while running
            continue
        log.update(
            totals["inputs_read"],
            records=totals["records_train"] + totals["records_eval"],
            rejected=totals["rejected"],
        )


def _log_metrics(result):
    try:
        totals = _counter_totals(result)
    except Exception:  # noqa: BLE001 - not every runner reports metrics
        return
    logging.info("Ingest counters: %s", dict(sorted(totals.items())))
