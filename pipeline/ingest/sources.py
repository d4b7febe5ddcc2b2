"""Source readers for the ingest stage.

One concern (planning and reading the four source kinds), over 500 lines for their readers.

A source is planned on the driver (cheap: headers, file listings, split sizes)
into a `SourcePlan`: a list of small, picklable work items plus a `Reader`
that expands one work item into `RawInput`s. The Beam pipeline creates the
work items and runs the reader in a DoFn; the benchmark's plain loop calls
the same reader directly. Work items are chunks of indices (idx, digits,
tfds) or single files (folder), so workers load an array once in `setup()`
instead of receiving 70,000 pickled arrays from the driver.

Source specs (``data.source``):
  idx:<dir>               MNIST-format IDX files (train-*, optional t10k-*),
                          gzipped or not. t10k is the eval split.
  folder:<dir>            image files in class subfolders (labels are the
                          sorted folder names) or a flat folder (label -1).
  tfds:<name>[/<config>]  a TFDS image dataset already prepared in
                          ``data.tfds_data_dir``; never downloaded.
  digits                  scikit-learn's bundled 8x8 digits.

The <dir> of idx: and folder: is a local directory or an object-store prefix
(gs://bucket/path). Both are listed and read through gan_keras.storage.filesystem, on
the driver (planning) and in the workers (each file or IDX slice), so workers
on another machine (Dataflow) need no shared disk, and a prefix holding a copy
of a local directory gives the same inputs, source ids and order.
"""

import collections
import contextlib
import dataclasses
import functools
import gzip
import itertools
import os
import pathlib
import re
import struct

import numpy as np

from gan_keras.data.records import EVAL, TRAIN
from gan_keras.storage import filesystem

SOURCE_KINDS = ("idx", "folder", "tfds", "digits")
SOURCE_SYNTAX = "idx:<dir>, folder:<dir>, tfds:<name>[/<config>] or digits"

# Lower-case file extensions the folder source decodes.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")

# Inputs per work item: large enough that per-item overhead vanishes, small
# enough that workers get balanced shares and a batch stays a few MB.
CHUNK_SIZE = 2500  # decoded arrays (idx, digits)
TFDS_CHUNK_SIZE = 500  # encoded images of any size
FILES_PER_ITEM = 64

# One input as read from the source, before decoding. `split` is TRAIN/EVAL
# when the source has its own split, else None (assigned by hash later).
# `payload` is a file path (str), encoded image bytes, a decoded uint8 array
# [H, W] / [H, W, C], or a `SourceReject` for inputs the source itself
# already knows are unusable.
RawInput = collections.namedtuple("RawInput", ["source_id", "split", "label", "payload"])

SourceReject = collections.namedtuple("SourceReject", ["reason", "detail"])


def parse_source(source) -> tuple[str, str]:
    """Splits ``kind:arg``; raises ValueError naming data.source."""
    if not isinstance(source, str) or not source.strip():
        raise ValueError(
            f"data.source must be a non-empty string ({SOURCE_SYNTAX}), got {source!r}"
        )
    kind, sep, arg = source.partition(":")
    kind = kind.strip()
    if kind not in SOURCE_KINDS:
        raise ValueError(
            f"data.source: unknown source kind {kind!r} in {source!r}; expected {SOURCE_SYNTAX}"
        )
    if kind == "digits":
        if arg:
            raise ValueError(f"data.source: 'digits' takes no argument, got {source!r}")
        return kind, ""
    if not sep or not arg.strip():
        raise ValueError(
            f"data.source: {kind!r} needs an argument ({SOURCE_SYNTAX}), got {source!r}"
        )
    return kind, arg.strip()


def check_source(source) -> None:
    """Cheap existence checks done up front (no reading of image data)."""
    kind, arg = parse_source(source)
    if kind in ("idx", "folder"):
        # A local directory or a supported object-store prefix; a typo like folder:gs:/bucket
        # is refused here rather than read as a local folder named `gs:`.
        path = filesystem.path(arg, f"data.source ({kind}:)")
        # is_dir first: in an object store each of these checks lists the prefix.
        if not filesystem.is_dir(path):
            if not filesystem.exists(path):
                raise ValueError(f"data.source: directory {arg!r} does not exist")
            raise ValueError(f"data.source: {arg!r} is not a directory")
        if kind == "idx":
            _idx_file(path, "train", "images")  # raises when missing
        elif not any(not _hidden(name) for name, _ in filesystem.list_dir(path)):
            raise ValueError(f"data.source: directory {arg!r} is empty (hidden files are ignored)")
    elif kind == "tfds" and not re.fullmatch(r"[A-Za-z0-9_]+(/[A-Za-z0-9_.\-]+)?(:[0-9.*]+)?", arg):
        raise ValueError(f"data.source: {arg!r} is not a TFDS name like 'mnist' or 'name/config'")


@dataclasses.dataclass(frozen=True)
class SourcePlan:
    kind: str
    work_items: list
    reader: "Reader"
    label_names: list
    # Expected number of inputs per split (None key: split by hash later).
    split_sizes: dict
    # Source-level facts worth keeping in stats.json.
    info: dict = dataclasses.field(default_factory=dict)

    @property
    def num_inputs(self) -> int:
        return sum(self.split_sizes.values())

    @property
    def has_own_split(self) -> bool:
        return None not in self.split_sizes


class Reader:
    """Expands one work item into RawInputs. Picklable; `setup` is lazy."""

    def setup(self) -> None:
        pass

    def read(self, item):
        raise NotImplementedError


def plan_source(source, tfds_data_dir="", label_names=()) -> SourcePlan:
    """Plans reading `source`; fails at once on a missing/empty/unknown source."""
    check_source(source)
    kind, arg = parse_source(source)
    planner = {
        "idx": _plan_idx,
        "folder": _plan_folder,
        "tfds": _plan_tfds,
        "digits": _plan_digits,
    }[kind]
    plan = planner(arg, tfds_data_dir) if kind == "tfds" else planner(arg)
    if plan.num_inputs == 0:
        raise ValueError(f"data.source: {source!r} contains no inputs")
    if label_names:
        plan = _override_label_names(plan, list(label_names))
    return plan


def _override_label_names(plan, names):
    num_classes = len(plan.label_names)
    if num_classes == 0:
        raise ValueError("data.label_names is set but the source is unlabelled")
    if plan.kind == "idx":
        # IDX label names are only our guess (0..max label), so more names
        # than observed labels are fine (classes absent from this data).
        if len(names) < num_classes:
            raise ValueError(
                f"data.label_names has {len(names)} names but the IDX labels go up to "
                f"{num_classes - 1}"
            )
    elif len(names) != num_classes:
        raise ValueError(
            f"data.label_names has {len(names)} names but the source has {num_classes} classes"
        )
    return dataclasses.replace(plan, label_names=names)


def _chunks(key, n, size=CHUNK_SIZE):
    return [(key, start, min(start + size, n)) for start in range(0, n, size)]


# --- idx --------------------------------------------------------------------

_IDX_DTYPES = {0x08: np.uint8}


def _idx_file(directory, prefix, what, required=True):
    ndim = 3 if what == "images" else 1
    for sep in ("-", "."):
        for suffix in (".gz", ""):
            path = filesystem.path(directory) / f"{prefix}-{what}{sep}idx{ndim}-ubyte{suffix}"
            if filesystem.is_file(path):
                return path
    if required:
        raise ValueError(
            f"data.source: no {prefix}-{what}-idx{ndim}-ubyte[.gz] in {str(directory)!r}"
        )
    return None


@contextlib.contextmanager
def _open_idx(path):
    # Through the filesystem layer, so a worker reads a gs:// file itself; decompressed
    # here by name, as gzip.open would.
    with filesystem.open_read(path) as raw:
        if str(path).endswith(".gz"):
            with gzip.GzipFile(fileobj=raw, mode="rb") as f:
                yield f
        else:
            yield raw


def _parse_idx_header(head, path):
    if len(head) < 4 or head[:2] != b"\0\0" or head[2] not in _IDX_DTYPES:
        raise ValueError(f"{path}: not an unsigned-byte IDX file (magic {head[:4].hex()})")
    ndim = head[3]
    if len(head) < 4 + 4 * ndim:
        raise ValueError(f"{path}: truncated IDX header")
    return struct.unpack(f">{ndim}I", head[4 : 4 + 4 * ndim])


def read_idx_header(path) -> tuple:
    with _open_idx(path) as f:
        head = f.read(4)
        dims = _parse_idx_header(head + f.read(4 * head[3] if len(head) == 4 else 0), path)
    return dims


@functools.lru_cache(maxsize=4)
def _read_idx_cached(path, mtime_ns, size):
    del mtime_ns, size  # cache keys only: a rewritten file is read again
    with _open_idx(path) as f:
        data = f.read()
    dims = _parse_idx_header(data[: 4 + 4 * data[3]] if len(data) > 3 else data, path)
    offset = 4 + 4 * len(dims)
    expected = int(np.prod(dims, dtype=np.int64))
    if len(data) - offset != expected:
        raise ValueError(
            f"{path}: header says shape {dims} ({expected} bytes) but the file has "
            f"{len(data) - offset}"
        )
    array = np.frombuffer(data, np.uint8, count=expected, offset=offset).reshape(dims)
    array.flags.writeable = False
    return array


def read_idx(path) -> np.ndarray:
    """The whole IDX array (cached per process, read-only)."""
    size, mtime_ns = filesystem.stat(path)
    return _read_idx_cached(str(path), mtime_ns, size)


def _plan_idx(directory):
    files, split_sizes, work, max_label = {}, {}, [], -1
    for prefix, split in (("train", TRAIN), ("t10k", EVAL)):
        images = _idx_file(directory, prefix, "images", required=prefix == "train")
        if images is None:
            continue
        dims = read_idx_header(images)
        if len(dims) not in (3, 4):
            raise ValueError(
                f"{images}: expected [N, H, W] or [N, H, W, C] images, header says {dims}"
            )
        labels = _idx_file(directory, prefix, "labels", required=False)
        if labels is not None:
            label_array = read_idx(labels)
            if label_array.shape != (dims[0],):
                raise ValueError(
                    f"{labels}: {label_array.shape} labels for {dims[0]} images in {images.name}"
                )
            if label_array.size:
                max_label = max(max_label, int(label_array.max()))
        files[prefix] = (str(images), str(labels) if labels else None)
        split_sizes[split] = dims[0]
        work += _chunks(prefix, dims[0])
    if "t10k" not in files:
        # No test files: the train files are all there is, split by hash.
        split_sizes = {None: split_sizes[TRAIN]}
    return SourcePlan(
        kind="idx",
        work_items=work,
        reader=IdxReader(files, split_by_source="t10k" in files),
        label_names=[str(i) for i in range(max_label + 1)],
        split_sizes=split_sizes,
        info={"files": sorted(os.path.basename(p) for pair in files.values() for p in pair if p)},
    )


class IdxReader(Reader):
    def __init__(self, files, split_by_source):
        self._files = files  # prefix -> (images path, labels path or None)
        self._split_by_source = split_by_source

    def read(self, item):
        prefix, start, end = item
        images_path, labels_path = self._files[prefix]
        images = read_idx(images_path)
        labels = read_idx(labels_path) if labels_path else None
        split = (TRAIN if prefix == "train" else EVAL) if self._split_by_source else None
        name = os.path.basename(images_path)
        for i in range(start, end):
            label = int(labels[i]) if labels is not None else -1
            yield RawInput(f"{name}#{i}", split, label, images[i])


# --- folder -----------------------------------------------------------------


def _hidden(name):
    # .DS_Store, ._AppleDouble, .ipynb_checkpoints, editor swap files, ...
    return name.startswith(".")


def _plan_folder(directory):
    root = filesystem.path(directory)
    entries = [(name, is_dir) for name, is_dir in filesystem.list_dir(root) if not _hidden(name)]
    class_dirs = [name for name, is_dir in entries if is_dir]
    # Non-hidden files, hidden directories pruned, in a directory walk's order.
    files = filesystem.walk_files(root, skip=_hidden)
    if class_dirs:
        label = {name: i for i, name in enumerate(class_dirs)}
        work = [(rel, label[rel.split("/", 1)[0]]) for rel in files if "/" in rel]
        # A file beside the class folders has no class: reject it rather than
        # invent a label or drop it silently.
        work += [(name, None) for name, is_dir in entries if not is_dir]
    else:
        work = [(rel, -1) for rel in files]
    return SourcePlan(
        kind="folder",
        work_items=[work[i : i + FILES_PER_ITEM] for i in range(0, len(work), FILES_PER_ITEM)],
        reader=FolderReader(str(root)),
        label_names=class_dirs,
        split_sizes={None: len(work)},
        info={"layout": "class_folders" if class_dirs else "flat"},
    )


class FolderReader(Reader):
    """Yields each file's path (a str: local, or an object-store URL the worker reads
    through gan_keras.storage.filesystem); the source id is the path below the root either way."""

    def __init__(self, root):
        self._root = root

    def read(self, item):
        remote = filesystem.is_object_store(self._root)
        for relpath, label in item:
            source_id = pathlib.PurePath(relpath).as_posix()
            path = f"{self._root}/{source_id}" if remote else os.path.join(self._root, relpath)
            if label is None:
                detail = "file beside the class folders, so it has no class"
                payload = SourceReject("not_in_class_folder", object_detail(path, detail))
                yield RawInput(source_id, None, -1, payload)
            else:
                yield RawInput(source_id, None, label, path)


def object_detail(path, detail: str) -> str:
    """A reject's detail, naming the object for an object-store source: its source id is
    the path below the root (as for a local copy, so splits and shards agree), which
    alone would not say which bucket the bad file is in."""
    return f"{path}: {detail}" if filesystem.is_object_store(path) else detail


# --- digits -----------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _digits_images():
    from sklearn import datasets

    digits = datasets.load_digits()
    # Values are 0..16 (counts of set pixels in 4x4 blocks): map onto 0..255.
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    return images, digits.target.astype(np.int64)


def _plan_digits(_):
    images, _labels = _digits_images()
    return SourcePlan(
        kind="digits",
        work_items=_chunks("digits", len(images)),
        reader=DigitsReader(),
        label_names=[str(i) for i in range(10)],
        split_sizes={None: len(images)},
    )


class DigitsReader(Reader):
    def read(self, item):
        _, start, end = item
        images, labels = _digits_images()
        for i in range(start, end):
            yield RawInput(f"digits#{i}", None, int(labels[i]), images[i])


# --- tfds -------------------------------------------------------------------

# TFDS split name -> our split. Other splits (e.g. SVHN's 'extra', STL-10's
# 'unlabelled') are not read; stats.json lists them as ignored.
_TFDS_SPLITS = {"train": TRAIN, "test": EVAL, "validation": EVAL}


def _tfds_builder(name, data_dir):
    import tensorflow_datasets as tfds

    try:
        return tfds.builder(name, data_dir=data_dir or None)
    except Exception as e:  # noqa: BLE001 - TFDS raises many types for bad names
        raise ValueError(f"data.source: cannot load TFDS builder {name!r}: {e}") from e


def _tfds_keys(builder, name):
    import tensorflow_datasets as tfds

    features = builder.info.features
    images = [k for k, f in features.items() if isinstance(f, tfds.features.Image)]
    labels = [k for k, f in features.items() if isinstance(f, tfds.features.ClassLabel)]
    if not images:
        raise ValueError(
            f"data.source: TFDS dataset {name!r} has no Image feature ({list(features)})"
        )
    image_key = "image" if "image" in images else images[0]
    label_key = ("label" if "label" in labels else labels[0]) if labels else None
    return image_key, label_key


def _tfds_not_prepared(name, data_dir, error):
    return ValueError(
        f"data.source: TFDS dataset {name!r} is not prepared in data.tfds_data_dir={data_dir!r} "
        f"(this pipeline never downloads). Prepare it where there is network access, e.g. "
        f"`tfds build {name} --data_dir=<dir>`, and point data.tfds_data_dir at it. ({error})"
    )


def _plan_tfds(name, data_dir):
    builder = _tfds_builder(name, data_dir)
    image_key, label_key = _tfds_keys(builder, name)
    known = {s: info.num_examples for s, info in builder.info.splits.items()}
    # Without split metadata (an unprepared dataset, or tfds.testing.mock_data)
    # try the usual split names; reading them is what proves preparation.
    candidates = list(known) or ["train", "test"]
    use_data_source = _tfds_use_data_source(builder)
    sizes = {}
    for split in candidates:
        if split not in _TFDS_SPLITS:
            continue
        if split in known and use_data_source is False:
            sizes[split] = known[split]
            continue
        try:
            sizes[split] = len(builder.as_data_source(split=split))
        except Exception as e:  # noqa: BLE001 - TFDS signals "not prepared" with several types
            if split == "train" or split in known:
                raise _tfds_not_prepared(name, data_dir, e) from e
    if "train" not in sizes:
        raise ValueError(f"data.source: TFDS dataset {name!r} has no 'train' split ({candidates})")
    own_split = any(_TFDS_SPLITS[s] == EVAL for s in sizes)
    if own_split:
        split_sizes = collections.Counter()
        for s, n in sizes.items():
            split_sizes[_TFDS_SPLITS[s]] += n
        split_sizes = dict(split_sizes)
    else:
        split_sizes = {None: sizes["train"]}
    work = [c for s in sorted(sizes) for c in _chunks(s, sizes[s], TFDS_CHUNK_SIZE)]
    label_names = list(builder.info.features[label_key].names) if label_key else []
    return SourcePlan(
        kind="tfds",
        work_items=work,
        reader=TfdsReader(name, data_dir, image_key, label_key, own_split, use_data_source),
        label_names=label_names,
        split_sizes=split_sizes,
        info={
            "tfds_splits": {s: sizes[s] for s in sorted(sizes)},
            "ignored_splits": sorted(set(candidates) - set(sizes)),
        },
    )


def _tfds_use_data_source(builder):
    """True for ArrayRecord data (random access), False for TFRecord, None if unknown."""
    try:
        fmt = builder.info.file_format
    except Exception:  # noqa: BLE001 - absent on unprepared builders
        return None
    if fmt is None:
        return None
    return "array_record" in str(getattr(fmt, "value", fmt)).lower()


class TfdsReader(Reader):
    def __init__(self, name, data_dir, image_key, label_key, own_split, use_data_source):
        self._name, self._data_dir = name, data_dir
        self._image_key, self._label_key = image_key, label_key
        self._own_split = own_split
        self._use_data_source = use_data_source
        self._builder = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_builder"] = None
        return state

    def setup(self):
        if self._builder is None:
            self._builder = _tfds_builder(self._name, self._data_dir)

    def _examples(self, split, start, end):
        import tensorflow_datasets as tfds

        skip = {self._image_key: tfds.decode.SkipDecoding()}
        if self._use_data_source is not False:
            source = self._builder.as_data_source(split=split)
            for i in range(start, end):
                yield source[i]
        else:
            ds = self._builder.as_dataset(
                split=f"{split}[{start}:{end}]", decoders=skip, shuffle_files=False
            )
            # islice: never emit more than the chunk, whatever the reader does.
            yield from itertools.islice(tfds.as_numpy(ds), end - start)

    def read(self, item):
        split, start, end = item
        self.setup()
        our_split = _TFDS_SPLITS[split] if self._own_split else None
        for i, example in enumerate(self._examples(split, start, end), start):
            label = int(example[self._label_key]) if self._label_key else -1
            image = example[self._image_key]
            if isinstance(image, np.ndarray) and image.dtype == object:
                image = image.item()
            yield RawInput(f"{self._name}/{split}#{i}", our_split, label, image)
