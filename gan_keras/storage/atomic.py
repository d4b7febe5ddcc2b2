"""Atomic file and directory writes, so a half-written artifact never
replaces a good one (and a reader polling a path never sees one).

Local paths use a temporary name and a rename; object-store URLs
(gan_keras.storage.filesystem, which explains how they commit) use one PUT per file and
commit files written last per directory.
"""

import contextlib
import json
import os
import pathlib
import shutil
import tempfile
import uuid

from gan_keras.storage import filesystem


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path, data: bytes) -> None:
    if filesystem.is_object_store(path):
        filesystem.write_bytes(path, data)  # one PUT: visible whole or not at all
        return
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp creates 0600; give the file the mode an ordinary open() would.
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=json_default) + "\n")


def json_default(value):
    """json.dumps' `default` for numpy scalars and arrays and paths (local or object store)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, filesystem.ObjectPath):
        return str(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def read_json(path):
    if filesystem.is_object_store(path):
        return json.loads(filesystem.read_text(path))
    with open(path, encoding="utf-8") as f:
        return json.load(f)


@contextlib.contextmanager
def staged_directory(final_path, keep_failed=None, commit_files=()):
    """Yields a temporary sibling directory; on success it replaces `final_path`.

    On failure `final_path` is untouched. The temporary directory is removed,
    or, with `keep_failed`, moved there (replacing an older failure) when it
    holds anything, so what the failed step wrote (e.g. a reject report) stays
    readable; the exception's message then names `keep_failed`, not the
    temporary path that no longer exists.

    On an object store (no rename) the temporary sibling is a prefix that is
    copied into place with `commit_files` (e.g. the runner's manifest.json)
    removed first and copied last; see `replace_directory`.
    """
    if filesystem.is_object_store(final_path):
        with _staged_object_directory(filesystem.path(final_path), keep_failed, commit_files) as t:
            yield t
        return
    final_path = pathlib.Path(final_path)
    final_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(dir=final_path.parent, prefix=f".{final_path.name}.tmp-"))
    try:
        yield tmp
    except Exception as e:
        if keep_failed is None or not any(tmp.iterdir()):
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        keep_failed = pathlib.Path(keep_failed)
        replace_directory(tmp, keep_failed)
        if len(e.args) == 1 and isinstance(e.args[0], str):
            e.args = (e.args[0].replace(str(tmp), str(keep_failed)),)
        e.add_note(f"What was written before the failure is kept in {keep_failed}")
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    replace_directory(tmp, final_path)


@contextlib.contextmanager
def _staged_object_directory(final_path, keep_failed, commit_files):
    tmp = final_path.with_name(f".{final_path.name}.tmp-{uuid.uuid4().hex[:12]}")
    try:
        yield tmp
    except Exception as e:
        if keep_failed is None or not filesystem.exists(tmp):
            filesystem.rmtree(tmp)
            raise
        replace_directory(tmp, keep_failed, commit_files)
        if len(e.args) == 1 and isinstance(e.args[0], str):
            e.args = (e.args[0].replace(str(tmp), str(keep_failed)),)
        e.add_note(f"What was written before the failure is kept in {keep_failed}")
        raise
    except BaseException:
        filesystem.rmtree(tmp)
        raise
    replace_directory(tmp, final_path, commit_files)


def replace_directory(src, dst, commit_files=()) -> None:
    """Moves `src` to `dst`, replacing any existing `dst` with two renames.

    Object stores cannot rename: `dst`'s `commit_files` are deleted first, then
    `src` is copied over it (files it lacks removed), its `commit_files` last,
    and `src` is deleted. A reader trusting only a `dst` with its commit file
    never sees a mixture of old and new."""
    if filesystem.is_object_store(src) or filesystem.is_object_store(dst):
        filesystem.copy_tree(src, dst, commit_files)
        filesystem.rmtree(src)
        return
    src, dst = pathlib.Path(src), pathlib.Path(dst)
    old = None
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dst, old)
    os.replace(src, dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
