"""The versions under a model base path, and the one being served.

As TF Serving's default version policy: the highest integer version under the
base path is served. `ModelVersions.refresh` (called by a polling thread every
``poll_seconds``) loads a new version completely, and warms it up, before
requests switch to it; when the served version's directory disappears the next
highest one is loaded, so deleting a bad version rolls back. A version that
fails to load (including a failed warm-up request from its
assets.extra/tf_serving_warmup_requests, replayed at load as TF Serving does)
is reported by `status` and the previous one keeps serving.

The base path may be an object-store URL (gs://; gan_keras.storage.filesystem): versions
are listed there at every poll, and a version counts once its saved_model.pb,
which the exporter's push writes after the rest of the version, is there; it is
downloaded to a local directory and loaded from it.
"""

import gc
import json
import logging
import pathlib
import threading
import time

import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.protobuf import saved_model_pb2

from gan_keras.client.model import clean_tf_message
from gan_keras.export import layout, warmup
from gan_keras.serving import codec
from gan_keras.serving.codec import ServingError
from gan_keras.storage import filesystem

logger = logging.getLogger(__name__)


class Servable:
    """One loaded, immutable model version. Safe to call from many threads."""

    def __init__(self, version: int, path: pathlib.Path):
        self.version = version
        self.path = pathlib.Path(path)
        self._model = tf.saved_model.load(str(self.path))
        self.signatures = {name: fn for name, fn in self._model.signatures.items()}
        if not self.signatures:
            raise ValueError(f"SavedModel {self.path} has no signatures")
        # name -> {input name: TensorSpec}
        self.input_specs = {
            name: dict(fn.structured_input_signature[1]) for name, fn in self.signatures.items()
        }
        self.output_names = {
            name: sorted(fn.structured_outputs) for name, fn in self.signatures.items()
        }
        # name -> SignatureDef proto (gRPC's GetModelMetadata) and as JSON (REST's metadata).
        self.signature_def_protos = _read_signature_defs(self.path)
        self.signature_defs = {
            name: json_format.MessageToDict(
                sig, always_print_fields_with_no_presence=True, preserving_proto_field_name=True
            )
            for name, sig in self.signature_def_protos.items()
        }
        info_path = layout.asset_path(self.path, layout.MODEL_INFO_ASSET)
        self.info = json.loads(info_path.read_text()) if info_path.exists() else {}
        self.num_classes = int(self.info.get("num_classes", 0))
        start = time.perf_counter()
        self.warmup_requests = self._warm_up()
        logger.info(
            "Warmed up version %d with %d requests in %.2f s",
            version,
            self.warmup_requests,
            time.perf_counter() - start,
        )

    def _warm_up(self) -> int:
        """Runs the version's warm-up requests; returns how many ran.

        The first call of a concrete function initialises kernels (and oneDNN
        primitives per input shape); pay for that before requests are switched
        over to this version. As tensorflow_model_server does, the requests are
        assets.extra/tf_serving_warmup_requests when the export has it, and a
        request that fails there fails the load.
        """
        warmup_path = layout.asset_path(self.path, layout.WARMUP_ASSET)
        if warmup_path.is_file():
            requests = warmup.read_warmup_requests(warmup_path)
            for signature_name, inputs in requests:
                specs = codec.signature_inputs(self, signature_name)
                codec.check_input_names(inputs, specs, signature_name, "warm-up request")
                self.run(signature_name, inputs)
            return len(requests)
        if "sample" in self.signatures:
            kwargs = {"num_samples": np.int32(1), "seed": np.int64(0)}
            if "label" in self.input_specs["sample"]:
                kwargs["label"] = np.zeros([0], np.int32)
            self.run("sample", kwargs)
            return 1
        if isinstance(self.info.get("inputs"), dict) and "serving_default" in self.signatures:
            # An image-to-image model: one all-black input of each shape it takes.
            self.run(
                "serving_default",
                {
                    name: np.zeros([1, *shape], np.uint8)
                    for name, shape in self.info["inputs"].items()
                },
            )
            return 1
        return 0

    def run(self, signature_name: str, inputs: dict) -> dict:
        fn = self.signatures[signature_name]
        try:
            outputs = fn(**{k: tf.constant(v) for k, v in inputs.items()})
        except tf.errors.InvalidArgumentError as e:
            raise ServingError(clean_tf_message(e.message)) from None
        return {k: v.numpy() for k, v in outputs.items()}


def _read_signature_defs(path: pathlib.Path) -> dict:
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((path / "saved_model.pb").read_bytes())
    return dict(proto.meta_graphs[0].signature_def)


class ModelVersions:
    """Tracks the versions under a base path and holds the one being served."""

    def __init__(
        self,
        model_base_path,
        model_name: str,
        poll_seconds: float = 2.0,
        freeze_heap: bool = False,
    ):
        """`freeze_heap`: after each load, move every object then alive out of the garbage
        collector's reach (gc.freeze), for a process that serves (see `_settle_heap`)."""
        self.model_base_path = filesystem.path(model_base_path, "--model_base_path")
        self._remote = filesystem.is_object_store(self.model_base_path)
        # version -> local copy (object-store base path): the served one and one being loaded
        self._copies: dict[int, filesystem.WorkingCopy] = {}
        self.model_name = model_name
        self.poll_seconds = poll_seconds
        self.freeze_heap = freeze_heap
        self._current: Servable | None = None
        self._failed: dict[int, tuple[float, str]] = {}  # version -> (mtime, error)
        self._lock = threading.Lock()  # guards _current and _failed
        self._refresh_lock = threading.Lock()  # one refresh at a time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # Readers take a reference to an immutable Servable; a swap never affects
    # a request already running, and the old version is freed when the last
    # such request drops it.
    def current(self) -> Servable | None:
        with self._lock:
            return self._current

    def resolve(self, name: str, version: int | None = None) -> Servable:
        """The servable a request for model `name` (and `version`, None: the latest) gets;
        the one version resolution for REST and gRPC. Anything else -> ServingError 404."""
        if name != self.model_name:
            spec = "Latest" if version is None else "Specific"
            detail = name if version is None else f"{name}, {version}"
            raise ServingError(f"Servable not found for request: {spec}({detail})", 404)
        return self.get(version)

    def get(self, version: int | None = None) -> Servable:
        servable = self.current()
        if servable is None or (version is not None and version != servable.version):
            spec = "Latest" if version is None else "Specific"
            detail = self.model_name if version is None else f"{self.model_name}, {version}"
            raise ServingError(f"Servable not found for request: {spec}({detail})", 404)
        return servable

    def _versions_on_disk(self) -> list[int]:
        """Complete versions (with a saved_model.pb), highest first."""
        if self._remote:
            found = filesystem.glob(self.model_base_path, f"*/{layout.SAVED_MODEL_FILE}")
            names = {p.parent.name for p in found}
            return sorted((int(n) for n in names if layout.is_version_name(n)), reverse=True)
        try:
            versions = layout.list_versions(self.model_base_path)
        except (FileNotFoundError, NotADirectoryError):  # removed while listing
            return []
        return [
            v
            for v in reversed(versions)
            if (self.model_base_path / str(v) / layout.SAVED_MODEL_FILE).is_file()
        ]

    def refresh(self) -> Servable | None:
        """Serves the highest loadable version on disk; returns the served one."""
        with self._refresh_lock:
            current = self.current()
            on_disk = self._versions_on_disk()
            with self._lock:
                for version in set(self._failed) - set(on_disk):
                    del self._failed[version]
            for version in on_disk:
                path = self.model_base_path / str(version)
                if current is not None and current.version == version:
                    return current
                try:
                    mtime = (
                        filesystem.mtime(path / layout.SAVED_MODEL_FILE)
                        if self._remote
                        else path.stat().st_mtime
                    )
                except (FileNotFoundError, OSError):
                    continue
                failed = self._failed.get(version)
                if failed is not None and failed[0] == mtime:
                    continue  # already failed; retried only when the directory changes
                try:
                    servable = Servable(version, self._local_version(version, path))
                except Exception as e:  # any load failure keeps the old version serving
                    logger.error(
                        "Failed to load %s version %d from %s: %s",
                        self.model_name,
                        version,
                        path,
                        e,
                    )
                    with self._lock:
                        self._failed[version] = (mtime, f"{type(e).__name__}: {e}")
                    self._copies.pop(version, None)
                    continue
                with self._lock:
                    self._current = servable
                    self._failed.pop(version, None)
                self._drop_copies(keep=version)
                self._settle_heap()
                if current is None:
                    logger.info("Serving %s version %d from %s", self.model_name, version, path)
                else:
                    logger.info(
                        "Switched %s from version %d to %d",
                        self.model_name,
                        current.version,
                        version,
                    )
                return servable
            if current is not None:
                logger.warning(
                    "%s version %d was removed from %s and no other version loads; unloading it",
                    self.model_name,
                    current.version,
                    self.model_base_path,
                )
                with self._lock:
                    self._current = None
                self._drop_copies(keep=None)
                self._settle_heap()
            return None

    def _local_version(self, version: int, path) -> pathlib.Path:
        """`path` itself when local; else a fresh local download of the version."""
        if not self._remote:
            return path
        self._copies.pop(version, None)
        copy = filesystem.WorkingCopy(path)
        copy.pull()
        self._copies[version] = copy
        return copy.local

    def _drop_copies(self, keep: int | None) -> None:
        """Local copies of versions no longer served are deleted (TemporaryDirectory)."""
        for version in [v for v in self._copies if v != keep]:
            del self._copies[version]

    def _settle_heap(self) -> None:
        """With freeze_heap: collect what the last swap left, then freeze the heap.

        A loaded TensorFlow model leaves over a million Python objects that the cyclic
        garbage collector's full (generation 2) passes walk every time, taking 100-400 ms on
        this machine, under the GIL, in whichever request thread happens to trigger one: that
        was the slowest 1-20% of requests. Frozen objects are never walked again. Unfreezing
        first lets the previous version's cycles be collected (once, here, on the poll
        thread) rather than kept for good.
        """
        if not self.freeze_heap:
            return
        start = time.perf_counter()
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        logger.info(
            "Froze %d objects out of the garbage collector's passes in %.2f s",
            gc.get_freeze_count(),
            time.perf_counter() - start,
        )

    def status(self, version: int | None = None) -> list[dict]:
        with self._lock:
            current, failed = self._current, dict(self._failed)
        entries = []
        if current is not None:
            entries.append((current.version, "AVAILABLE", "OK", ""))
        for v, (_, error) in failed.items():
            # Only failures newer than what is served matter (an older
            # version is not meant to be served anyway).
            if current is None or v > current.version:
                entries.append((v, "END", "UNKNOWN", error))
        if version is not None:
            entries = [e for e in entries if e[0] == version]
            if not entries:
                raise ServingError(
                    f"Could not find version {version} of model {self.model_name}", 404
                )
        if not entries:
            raise ServingError(f"Could not find any versions of model {self.model_name}", 404)
        return [
            {
                "version": str(v),
                "state": state,
                "status": {"error_code": code, "error_message": message},
            }
            for v, state, code, message in sorted(entries, reverse=True)
        ]

    def start(self) -> None:
        if self._thread is not None or self.poll_seconds <= 0:
            return
        self._thread = threading.Thread(target=self._poll, name="model-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _poll(self):
        while not self._stop.wait(self.poll_seconds):
            try:
                self.refresh()
            except Exception:  # the poller must outlive one bad listing
                logger.exception("Polling %s failed", self.model_base_path)
