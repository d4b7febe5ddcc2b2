"""The order in which gan_keras.storage.filesystem writes to an object store.

What is guarded: an object store has no rename, so a directory is "committed" by the order
of its writes. Readers trust a directory only when its commit file is there (the runner: a
stage's manifest.json; tf.train.latest_checkpoint: the `checkpoint` pointer; the model
server: saved_model.pb). So

  * `WorkingCopy.push` deletes the store's `invalidate_first` files (manifest.json) that
    change or go before anything else, uploads data files, then the `commit_last` pointer
    files, only then deletes what the pointer no longer names, and uploads the manifest last;
  * `copy_tree(src, dst, commit_files)` removes dst's commit files (and its files src lacks)
    before copying, and copies the commit files last.

Why: with any other order a reader (a resumed run, the model server) can find a manifest or
pointer naming files that are not there yet or no longer, and take a half-written artifact
for a good one.

How: the ordering logic runs only for object-store paths (local copy_tree is
shutil.copytree; WorkingCopy refuses a local remote), so Beam's FileSystems, the one layer
filesystem.py writes through (`_fs()`), is replaced by an in-memory store that records every
write, copy and delete in call order. No emulator, no network.
"""

import io
import types

import pytest

from gan_keras.storage import filesystem

BUCKET = "gs://order-test"


class RecordingStore:
    """The parts of Beam's FileSystems that filesystem.py calls, over a dict of objects;
    `log` holds ("put" | "copy" | "delete", relative path) in the order they happen."""

    def __init__(self):
        self.objects: dict[str, bytes] = {}
        self.log: list[tuple[str, str]] = []

    def _rel(self, url: str) -> str:
        assert url.startswith(BUCKET + "/"), url
        return url[len(BUCKET) + 1 :]

    def match(self, patterns):
        (pattern,) = patterns
        assert pattern.endswith("/**"), pattern  # _objects' listing is all filesystem.py uses
        prefix = pattern[:-2]
        metadata = [
            types.SimpleNamespace(path=url, size_in_bytes=len(data), last_updated_in_seconds=0)
            for url, data in sorted(self.objects.items())
            if url.startswith(prefix)
        ]
        return [types.SimpleNamespace(metadata_list=metadata)]

    def exists(self, url):
        return url in self.objects

    def delete(self, urls):
        for url in urls:
            del self.objects[url]  # Beam raises on a missing object too
            self.log.append(("delete", self._rel(url)))

    def copy(self, sources, destinations):
        for src, dst in zip(sources, destinations, strict=True):
            self.objects[dst] = self.objects[src]
            self.log.append(("copy", self._rel(dst)))

    def create(self, url, compression_type=None):
        store = self

        class Upload(io.BytesIO):
            def close(self):  # the object appears when the upload is closed, whole
                if not self.closed:
                    store.objects[url] = self.getvalue()
                    store.log.append(("put", store._rel(url)))
                super().close()

        return Upload()

    def open(self, url, compression_type=None):
        return io.BytesIO(self.objects[url])

    def put(self, rel: str, data: bytes = b"old") -> None:
        """Seeds an object without logging it."""
        self.objects[f"{BUCKET}/{rel}"] = data

    def contents(self, under: str = "") -> dict[str, bytes]:
        prefix = f"{BUCKET}/{under}"
        return {
            url[len(prefix) :]: data for url, data in self.objects.items() if url.startswith(prefix)
        }


@pytest.fixture
def store(monkeypatch):
    store = RecordingStore()
    monkeypatch.setattr(filesystem, "_fs", lambda: store)
    monkeypatch.setattr(filesystem, "_uncompressed", lambda: None)  # no Beam import
    # gs:// paths are checked for the Cloud Storage client; none is used here.
    monkeypatch.setattr(filesystem, "_installed", lambda module: True)
    return store


def _index(log, entry) -> int:
    assert entry in log, f"{entry} not in {log}"
    return log.index(entry)


# --------------------------------------------------------------------------
# WorkingCopy.push: a training run's directory moving from checkpoint 1 to 2
# --------------------------------------------------------------------------

OLD_CKPT = ("train/ckpt-1.index", "train/ckpt-1.data-00000-of-00001")
NEW_CKPT = ("train/ckpt-2.index", "train/ckpt-2.data-00000-of-00001")
POINTER, MANIFEST = "train/checkpoint", "train/manifest.json"


@pytest.fixture
def pushed(store, tmp_path):
    """A working copy of the bucket pulled at checkpoint 1, moved on to checkpoint 2 locally
    and pushed: (store, the working copy, what push returned)."""
    for rel in (*OLD_CKPT, POINTER, MANIFEST):
        store.put(rel)
    copy = filesystem.WorkingCopy(
        BUCKET,
        tmp_path / "local",
        invalidate_first=("manifest.json",),
        commit_last=("checkpoint",),
    )
    copy.pull()
    for rel in NEW_CKPT:
        (copy.local / rel).write_bytes(b"new checkpoint data")
    (copy.local / POINTER).write_bytes(b'model_checkpoint_path: "ckpt-2"')
    for rel in OLD_CKPT:
        (copy.local / rel).unlink()
    (copy.local / MANIFEST).write_bytes(b'{"complete": true, "step": 2}')
    returned = copy.push()
    return store, copy, returned


def test_push_deletes_the_stores_manifest_before_any_other_write(pushed):
    store, _, _ = pushed
    assert store.log[0] == ("delete", MANIFEST)


def test_push_uploads_the_pointer_after_every_data_file(pushed):
    store, _, _ = pushed
    pointer = _index(store.log, ("put", POINTER))
    assert all(_index(store.log, ("put", rel)) < pointer for rel in NEW_CKPT)


def test_push_deletes_superseded_files_only_after_the_pointer_moved_past_them(pushed):
    store, _, _ = pushed
    pointer = _index(store.log, ("put", POINTER))
    assert all(_index(store.log, ("delete", rel)) > pointer for rel in OLD_CKPT)


def test_push_uploads_the_manifest_last(pushed):
    store, _, _ = pushed
    assert store.log[-1] == ("put", MANIFEST)
    assert store.log.count(("put", MANIFEST)) == 1


def test_push_leaves_the_store_equal_to_the_working_copy(pushed):
    store, copy, returned = pushed
    files = [p for p in copy.local.rglob("*") if p.is_file()]
    local = {p.relative_to(copy.local).as_posix(): p.read_bytes() for p in files}
    assert store.contents() == local
    assert returned == sorted([*NEW_CKPT, *OLD_CKPT, POINTER, MANIFEST])


def test_push_of_a_removed_manifest_deletes_it_before_anything_else(store, tmp_path):
    # A stage rerun that fails: its manifest goes first, so the half-written data after it
    # is never trusted, and no manifest is uploaded.
    store.put(MANIFEST)
    copy = filesystem.WorkingCopy(BUCKET, tmp_path / "local", invalidate_first=("manifest.json",))
    copy.pull()
    (copy.local / MANIFEST).unlink()
    (copy.local / "train/ckpt-3.index").write_bytes(b"partial")
    copy.push()
    assert store.log == [("delete", MANIFEST), ("put", "train/ckpt-3.index")]


def test_push_of_a_new_directory_uploads_saved_model_pb_after_its_variables(store, tmp_path):
    # An export: the model server trusts a version once saved_model.pb is there.
    copy = filesystem.WorkingCopy(BUCKET, tmp_path / "local", commit_last=("saved_model.pb",))
    version = copy.local / "export/generator/1"
    (version / "variables").mkdir(parents=True)
    (version / "saved_model.pb").write_bytes(b"graph")
    (version / "variables/variables.index").write_bytes(b"index")
    (version / "variables/variables.data-00000-of-00001").write_bytes(b"weights")
    (version / "zz_asset.json").write_bytes(b"{}")  # sorts after saved_model.pb by name
    copy.push()
    assert store.log[-1] == ("put", "export/generator/1/saved_model.pb")
    assert len(store.log) == 4


# --------------------------------------------------------------------------
# copy_tree: a staged stage directory copied into place in the store
# --------------------------------------------------------------------------


@pytest.fixture
def copied(store):
    """dst holds an older complete stage (with a file src lacks); src is the new one."""
    for rel in ("dst/manifest.json", "dst/shard-0", "dst/stale-shard"):
        store.put(rel, b"old")
    for rel in ("src/manifest.json", "src/shard-0", "src/shard-1", "src/z/stats.json"):
        store.put(rel, b"new")
    filesystem.copy_tree(f"{BUCKET}/src", f"{BUCKET}/dst", commit_files=("manifest.json",))
    return store


def test_copy_tree_removes_the_destinations_commit_file_before_anything_else(copied):
    # Before the stale files too: Beam's GCS filesystem deletes a list's paths one by one.
    assert copied.log[0] == ("delete", "dst/manifest.json")


def test_copy_tree_removes_files_the_source_lacks_before_copying(copied):
    deleted = _index(copied.log, ("delete", "dst/stale-shard"))
    first_copy = min(i for i, (op, _) in enumerate(copied.log) if op == "copy")
    assert deleted < first_copy
    assert "stale-shard" not in copied.contents("dst/")


def test_copy_tree_copies_the_commit_file_last(copied):
    assert copied.log[-1] == ("copy", "dst/manifest.json")
    assert copied.log.count(("copy", "dst/manifest.json")) == 1
    assert copied.contents("dst/") == copied.contents("src/")
