"""Atomic file and directory writes, so a half-written artifact never
replaces a good one (and a reader polling a path never sees one)."""

import contextlib
import json
import os
import pathlib
import shutil
import tempfile


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path, data: bytes) -> None:
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
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(value):
    # numpy scalars and arrays, pathlib paths.
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


@contextlib.contextmanager
def staged_directory(final_path, keep_failed=None):
    """Yields a temporary sibling directory; on success it replaces `final_path`.

    On failure `final_path` is untouched. The temporary directory is removed,
    or, with `keep_failed`, moved there (replacing an older failure) when it
    holds anything, so what the failed step wrote (e.g. a reject report) stays
    readable; the exception's message then names `keep_failed`, not the
    temporary path that no longer exists.
    """
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


def replace_directory(src, dst) -> None:
    """Moves `src` to `dst`, replacing any existing `dst` with two renames."""
    src, dst = pathlib.Path(src), pathlib.Path(dst)
    old = None
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dst, old)
    os.replace(src, dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
