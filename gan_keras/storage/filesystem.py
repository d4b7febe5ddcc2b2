"""The one filesystem layer for work directories, sources and model base paths.

One concern, kept whole (over 500 lines): every path the project reads or writes goes
through here, local or in an object store, with the same errors.

A path is either local (a `pathlib.Path`, handled with the os module exactly as
before object stores existed: atomic renames, fsync) or an object-store URL
(an `ObjectPath`, handled with Apache Beam's `FileSystems`, the layer Beam's own
workers use inside the ingest job, so a Dataflow job and the driver see the
same objects). `check` refuses anything else up front.

Object stores have no rename, so nothing here pretends to rename there:

  * a single object is written with one PUT, which the store makes visible
    whole or not at all (`write_bytes`);
  * a directory is committed by writing its commit files last (`WorkingCopy.push`):
    a stage's manifest.json, TensorFlow's `checkpoint` pointer, an export's
    saved_model.pb. Readers trust a directory only when its commit file is there
    (the runner: a complete manifest; `tf.train.latest_checkpoint`: the pointer;
    the model server: saved_model.pb), so a half-written artifact is never taken
    for a good one.

TensorFlow's own GCS filesystem (tf.io.gfile on gs://) is not used: its endpoints
are compiled in (https://www.googleapis.com/storage/v1/, no emulator variable in
TF 2.21's tsl gcs_file_system.cc), so it cannot be tested offline, and it cannot
order commits. Code that needs local files for TensorFlow (tf.data, checkpoints,
summaries, SavedModels) works in a `WorkingCopy`: a local directory pulled from
the store and pushed back, commit files last.
"""

import contextlib
import dataclasses
import importlib.util
import os
import pathlib
import posixpath
import re
import shutil
import tempfile

# Schemes served by Beam's FileSystems with what `pip install -e .[gcs]` installs.
SUPPORTED_SCHEMES = ("gs",)
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_S3_REFUSAL = (
    "s3:// is not supported: Beam's S3 filesystem needs apache-beam[aws] (boto3) and nothing "
    "here tests it against an S3 emulator yet; use gs:// or a local path"
)


class PathError(ValueError):
    """A path flag or field names neither a local path nor a supported object store."""


def check(value, flag: str) -> str:
    """`value` as a string if it is a local path or a supported object-store URL.

    Raises PathError naming `flag` and the value otherwise: an unknown scheme,
    s3://, or a scheme with one slash (`gs:/bucket`), which pathlib would
    silently turn into a local folder named `gs:`.
    """
    text = os.fspath(value) if not isinstance(value, ObjectPath) else str(value)
    match = _SCHEME.match(text)
    if not match:
        return text
    scheme, rest = match.group(1).lower(), text[match.end() :]
    if not rest.startswith("//"):
        raise PathError(
            f"{flag}={text!r}: '{scheme}:' is followed by {rest[:2]!r}, not '//'; write "
            f"{scheme}://<bucket>/<path> for an object store, or ./{text} for a local path "
            "whose name has a colon"
        )
    if scheme == "s3":
        raise PathError(f"{flag}={text!r}: {_S3_REFUSAL}")
    if scheme not in SUPPORTED_SCHEMES:
        raise PathError(
            f"{flag}={text!r}: unsupported scheme {scheme}://; use a local path or "
            + ", ".join(f"{s}://<bucket>/<path>" for s in SUPPORTED_SCHEMES)
        )
    if not rest[2:].split("/", 1)[0]:
        raise PathError(f"{flag}={text!r}: no bucket; write {scheme}://<bucket>/<path>")
    if not _installed("google.cloud.storage"):
        raise PathError(
            f"{flag}={text!r}: gs:// needs the Cloud Storage client; pip install -e '.[gcs]'"
        )
    return text


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def is_object_store(value) -> bool:
    if isinstance(value, ObjectPath):
        return True
    if isinstance(value, pathlib.PurePath):
        return False
    return _SCHEME.match(os.fspath(value)) is not None and "://" in os.fspath(value)


def path(value, flag: str = "path"):
    """`value` as an `ObjectPath` (object store) or a `pathlib.Path` (local), after `check`."""
    if isinstance(value, (ObjectPath, pathlib.Path)):
        return value
    text = check(value, flag)
    return ObjectPath(text) if is_object_store(text) else pathlib.Path(text)


@dataclasses.dataclass(frozen=True, order=True)
class ObjectPath:
    """An object-store URL with the parts of pathlib's API the pipeline uses.

    It deliberately has no __fspath__: handing one to open() or os.* fails
    loudly instead of creating a local folder named `gs:`.
    """

    url: str

    def __post_init__(self):
        scheme, rest = self.url.split("://", 1)
        rest = posixpath.normpath(rest) if rest.strip("/") else rest
        object.__setattr__(self, "url", f"{scheme}://{rest.strip('/')}")

    def __str__(self) -> str:
        return self.url

    def __truediv__(self, part) -> "ObjectPath":
        return ObjectPath(f"{self.url}/{part}")

    @property
    def name(self) -> str:
        return posixpath.basename(self.url)

    @property
    def parent(self) -> "ObjectPath":
        return ObjectPath(posixpath.dirname(self.url))

    def with_name(self, name: str) -> "ObjectPath":
        return self.parent / name

    def relative_to(self, other) -> pathlib.PurePosixPath:
        prefix = str(other).rstrip("/") + "/"
        if not self.url.startswith(prefix):
            raise ValueError(f"{self} is not under {other}")
        return pathlib.PurePosixPath(self.url[len(prefix) :])

    # pathlib spellings callers use on any path; an URL is already absolute.
    def resolve(self) -> "ObjectPath":
        return self

    def expanduser(self) -> "ObjectPath":
        return self


def _fs():
    # Imported when an object store is used: Beam is heavy, and local paths never need it.
    from apache_beam.io.filesystems import FileSystems

    return FileSystems


def _uncompressed():
    # Beam's default, AUTO, would (de)compress *.gz by name; the layer moves bytes as they are.
    from apache_beam.io.filesystem import CompressionTypes

    return CompressionTypes.UNCOMPRESSED


def _objects(prefix: ObjectPath) -> dict[str, object]:
    """Every object under `prefix`/ as {relative path: Beam FileMetadata}."""
    base = str(prefix) + "/"
    found = _fs().match([base + "**"])[0].metadata_list
    return {m.path[len(base) :]: m for m in found if not m.path.endswith("/")}


def exists(p) -> bool:
    """A file, or a directory (for an object store: any object under the prefix)."""
    p = path(p)
    if isinstance(p, pathlib.Path):
        return p.exists()
    return _fs().exists(str(p)) or bool(_objects(p))


def is_file(p) -> bool:
    p = path(p)
    return p.is_file() if isinstance(p, pathlib.Path) else _fs().exists(str(p))


def is_dir(p) -> bool:
    p = path(p)
    return p.is_dir() if isinstance(p, pathlib.Path) else bool(_objects(p))


def glob(directory, pattern: str) -> list:
    """Files (locally also directories) under `directory` matching `pattern`, sorted.
    `*` stays within one path segment, `**` crosses them, as in pathlib."""
    directory = path(directory)
    if isinstance(directory, pathlib.Path):
        return sorted(directory.glob(pattern))
    found = _fs().match([f"{directory}/{pattern}"])[0].metadata_list
    return sorted(ObjectPath(m.path) for m in found)


def mtime(p) -> float:
    p = path(p)
    if isinstance(p, pathlib.Path):
        return p.stat().st_mtime
    return _fs().last_updated(str(p))


@contextlib.contextmanager
def open_read(p):
    """A binary stream of file `p`'s bytes as stored (no decompression by name).

    An object store's failures (Beam raises its own and the client library's types)
    come out as FileNotFoundError or OSError naming the object, as a local file's do,
    so callers handle one family of errors whatever the store."""
    p = path(p)
    if isinstance(p, pathlib.Path):
        with open(p, "rb") as f:
            yield f
        return
    try:
        stream = _fs().open(str(p), compression_type=_uncompressed())
    except Exception as e:
        raise _read_error(p, e) from e
    with stream:
        yield _CheckedReads(stream, p)


class _CheckedReads:
    """A read-only stream whose read errors are OSErrors naming the object."""

    def __init__(self, stream, p):
        self._stream, self._path = stream, p

    def read(self, size=-1):
        try:
            return self._stream.read(size)
        except Exception as e:
            raise _read_error(self._path, e) from e

    def readable(self):
        return True

    def __getattr__(self, name):  # seek, tell, ...: the stream's own
        return getattr(self._stream, name)


def _read_error(p, error) -> OSError:
    if isinstance(error, FileNotFoundError):
        return error
    try:
        missing = not _fs().exists(str(p))
    except Exception:  # noqa: BLE001 - the store is unreachable: report the read's own error
        missing = False
    if missing:
        return FileNotFoundError(f"No such object: {p}")
    return OSError(f"Reading {p} failed: {type(error).__name__}: {error}")


def read_bytes(p) -> bytes:
    p = path(p)
    if isinstance(p, pathlib.Path):
        return p.read_bytes()
    with open_read(p) as f:
        return f.read()


def stat(p) -> tuple[int, int]:
    """(size in bytes, modification time in ns) of file `p`; FileNotFoundError if absent."""
    p = path(p)
    if isinstance(p, pathlib.Path):
        st = p.stat()
        return st.st_size, st.st_mtime_ns
    for meta in _fs().match([str(p)])[0].metadata_list:
        if meta.path == str(p):  # a pattern match also lists longer names with this prefix
            return meta.size_in_bytes, int(meta.last_updated_in_seconds * 1e9)
    raise FileNotFoundError(f"No such object: {p}")


def list_dir(directory) -> list[tuple[str, bool]]:
    """(name, is a directory) of each entry directly in `directory`, sorted by name.

    Locally symlinks count as what they point to (os.scandir's is_dir). In an object
    store a directory is a name that objects' paths continue below; a name can then be
    both an object and a directory, and is listed as both."""
    directory = path(directory)
    if isinstance(directory, pathlib.Path):
        return sorted((e.name, e.is_dir()) for e in os.scandir(directory))
    entries = set()
    for rel in _objects(directory):
        head, sep, _ = rel.partition("/")
        entries.add((head, bool(sep)))
    return sorted(entries)


def walk_files(directory, skip=lambda name: False) -> list[str]:
    """Relative '/'-separated paths of the files below `directory`, in os.walk's top-down
    order with sorted names: a directory's files, then each subdirectory's, so a local
    tree and its copy in an object store list the same paths in the same order. Names for
    which `skip(name)` holds are left out, with everything below them (locally those
    directories are not even entered). Locally, symlinked directories are followed."""
    directory = path(directory)
    if isinstance(directory, pathlib.Path):
        out = []
        for dirpath, dirnames, filenames in os.walk(directory, followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if not skip(d))
            rel = os.path.relpath(dirpath, directory).replace(os.sep, "/")
            prefix = "" if rel == "." else rel + "/"
            out += [prefix + f for f in sorted(filenames) if not skip(f)]
        return out
    kept = [rel for rel in _objects(directory) if not any(skip(n) for n in rel.split("/"))]

    def walk_order(rel):
        # Per level (is a directory, name): files (False) sort before subdirectories.
        *dirs, name = rel.split("/")
        return [(True, d) for d in dirs] + [(False, name)]

    return sorted(kept, key=walk_order)


def read_text(p) -> str:
    return read_bytes(p).decode("utf-8")


def write_bytes(p, data: bytes) -> None:
    """One PUT: object stores make it visible whole or not at all. Locally,
    io_utils.atomic_write_bytes (temp file and rename) is the atomic writer."""
    p = path(p)
    if isinstance(p, pathlib.Path):
        p.write_bytes(data)
        return
    with _fs().create(str(p), compression_type=_uncompressed()) as f:
        f.write(data)


def makedirs(p) -> None:
    """Locally mkdir -p; object stores have no directories (a prefix exists with its objects)."""
    p = path(p)
    if isinstance(p, pathlib.Path):
        p.mkdir(parents=True, exist_ok=True)


def remove(p) -> None:
    """Removes one file; a missing one is not an error."""
    p = path(p)
    if isinstance(p, pathlib.Path):
        p.unlink(missing_ok=True)
    elif _fs().exists(str(p)):
        _fs().delete([str(p)])


def rmtree(p) -> None:
    """Removes a directory (every object under the prefix); a missing one is not an error."""
    p = path(p)
    if isinstance(p, pathlib.Path):
        shutil.rmtree(p, ignore_errors=True)
        return
    names = [str(p / rel) for rel in _objects(p)]
    if names:
        _fs().delete(names)


def copy_tree(src, dst, commit_files=()) -> None:
    """Copies directory `src` over `dst` (same kind of store), files named in
    `commit_files` last, after removing `dst`'s commit files first and its
    files `src` lacks: `dst` is trusted again only when it is complete."""
    src, dst = path(src), path(dst)
    if isinstance(src, pathlib.Path) != isinstance(dst, pathlib.Path):
        raise ValueError(f"copy_tree({src}, {dst}): both must be local or both remote")
    if isinstance(src, pathlib.Path):
        shutil.copytree(src, dst, dirs_exist_ok=True)
        return
    source, target = _objects(src), _objects(dst)
    is_commit = {rel: posixpath.basename(rel) in commit_files for rel in source}
    stale = [rel for rel in target if posixpath.basename(rel) in commit_files]
    stale += [rel for rel in target if rel not in source and rel not in stale]
    if stale:
        _fs().delete([str(dst / rel) for rel in stale])
    ordered = sorted(source, key=lambda rel: (is_commit[rel], rel))
    for rel in ordered:
        _fs().copy([str(src / rel)], [str(dst / rel)])


def _local_files(root: pathlib.Path) -> dict[str, tuple[int, int]]:
    files = {}
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            full = os.path.join(dirpath, name)
            st = os.stat(full)
            files[os.path.relpath(full, root).replace(os.sep, "/")] = (st.st_size, st.st_mtime_ns)
    return files


class WorkingCopy:
    """A local directory mirroring an object-store directory, for code that needs local
    files (TensorFlow's ops). `pull` downloads, `push` uploads what changed since.

    `push` orders its writes so the store never shows a half-written artifact as good:
    (1) `invalidate_first` files (a stage's manifest.json) that change or go are deleted
    in the store, (2) changed files are uploaded, files named in `commit_last` (pointer
    files: TF's `checkpoint`, saved_model.pb) after the others, (3) files deleted locally
    are deleted in the store (an old checkpoint only after the pointer moved past it),
    (4) the `invalidate_first` files are uploaded last, committing their directory.
    """

    def __init__(
        self, remote, local=None, *, skip=None, not_pulled=None, invalidate_first=(), commit_last=()
    ):
        self.remote = path(remote)
        if not isinstance(self.remote, ObjectPath):
            raise ValueError(f"WorkingCopy needs an object-store URL, not {remote}")
        if local is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="gan-workdir-")
            local = self._tmp.name
        self.local = pathlib.Path(local)
        self.local.mkdir(parents=True, exist_ok=True)
        # relative path -> True to leave it out of pulls and pushes (e.g. temporary names),
        # or out of pulls only (what is kept in the store but never read again)
        self.skip = skip or (lambda rel: False)
        self.not_pulled = not_pulled or (lambda rel: False)
        self.invalidate_first = tuple(invalidate_first)
        self.commit_last = tuple(commit_last)
        self._pushed: dict[str, tuple[int, int]] = {}

    def local_path(self, remote_path) -> pathlib.Path:
        return self.local / path(remote_path).relative_to(self.remote)

    def remote_path(self, local_path) -> ObjectPath:
        rel = pathlib.Path(local_path).relative_to(self.local).as_posix()
        return self.remote if rel == "." else self.remote / rel

    def pull(self, sub: str = "") -> None:
        """Downloads everything under `sub` (default: all), replacing the local copy of it."""
        base = self.remote / sub if sub else self.remote
        local_base = self.local / sub if sub else self.local
        prefix = f"{sub}/" if sub else ""
        objects = {
            prefix + rel: meta
            for rel, meta in _objects(base).items()
            if not self.skip(prefix + rel) and not self.not_pulled(prefix + rel)
        }
        if sub:
            shutil.rmtree(local_base, ignore_errors=True)
        for rel, meta in objects.items():
            target = self.local / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            with (
                _fs().open(meta.path, compression_type=_uncompressed()) as src,
                open(target, "wb") as dst,
            ):
                shutil.copyfileobj(src, dst, 1 << 20)
        now = _local_files(self.local)
        for rel in [r for r in self._pushed if r.startswith(prefix)]:
            del self._pushed[rel]
        self._pushed.update({rel: now[rel] for rel in objects if rel in now})
        # Empty local directories the store cannot show (e.g. a stage's output dir) stay.
        local_base.mkdir(parents=True, exist_ok=True)

    def push(self, sub: str = "") -> list[str]:
        """Uploads what changed under `sub` (default: all) since the last pull or push,
        commit files last; returns the relative paths written or deleted."""
        prefix = f"{sub}/" if sub else ""
        base = self.local / sub if sub else self.local
        now = {
            (prefix + rel): stat
            for rel, stat in (_local_files(base).items() if base.exists() else ())
            if not self.skip(prefix + rel)
        }
        before = {rel: s for rel, s in self._pushed.items() if rel.startswith(prefix)}
        changed = [rel for rel, stat in now.items() if before.get(rel) != stat]
        removed = [rel for rel in before if rel not in now]

        def named(rel, names):
            return posixpath.basename(rel) in names

        fs = _fs()
        invalidate = [rel for rel in changed + removed if named(rel, self.invalidate_first)]
        existing = [
            str(self.remote / rel) for rel in invalidate if fs.exists(str(self.remote / rel))
        ]
        if existing:
            fs.delete(existing)
        uploads = sorted(
            (rel for rel in changed if not named(rel, self.invalidate_first)),
            key=lambda rel: (named(rel, self.commit_last), rel),
        )
        for rel in uploads:
            self._upload(rel)
        gone = [str(self.remote / rel) for rel in removed if fs.exists(str(self.remote / rel))]
        if gone:
            fs.delete(gone)
        for rel in sorted(rel for rel in changed if named(rel, self.invalidate_first)):
            self._upload(rel)
        for rel in removed:
            self._pushed.pop(rel, None)
        self._pushed.update({rel: now[rel] for rel in changed})
        return sorted(changed + removed)

    def _upload(self, rel: str) -> None:
        with (
            open(self.local / rel, "rb") as src,
            _fs().create(str(self.remote / rel), compression_type=_uncompressed()) as dst,
        ):
            shutil.copyfileobj(src, dst, 1 << 20)
