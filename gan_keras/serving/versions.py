"""The versions under a model base path, and the ones being served.

By default, as TF Serving's default version policy: the highest integer version under the
base path is served; a `VersionPolicy` (TF Serving's `latest { num_versions }`,
`specific { versions }`, `all {}`, from --model_config_file) serves several.
`ModelVersions.refresh` (called by a polling thread every ``poll_seconds``) loads a new
version completely, and warms it up, before requests switch to it; when the served
version's directory disappears the next highest one is loaded, so deleting a bad version
rolls back. A version that fails to load (including a failed warm-up request from its
assets.extra/tf_serving_warmup_requests, replayed at load as TF Serving does) is reported
by `status` and the previous one keeps serving. Requests hold the version they run on
(`ModelVersions.lease`); a version that leaves the served set takes no new requests and is
unloaded when the last one holding it ends.

The base path may be an object-store URL (gs://; gan_keras.storage.filesystem): versions
are listed there at every poll, and a version counts once its saved_model.pb,
which the exporter's push writes after the rest of the version, is there; it is
downloaded to a local directory and loaded from it.
"""

import contextlib
import dataclasses
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

    def unload(self) -> None:
        """Releases the model (the loader's last references to it). Called once no request
        holds this version; running it afterwards is a server bug, and fails loudly."""
        self.signatures = {}
        self._model = None

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


@dataclasses.dataclass(frozen=True)
class VersionPolicy:
    """Which versions under a base path are served: TF Serving's ServableVersionPolicy.

    ``latest`` serves the `num_versions` highest versions that load (a version that fails to
    load is skipped, so the next one down keeps serving); ``specific`` the listed versions that
    exist and load; ``all`` every version that loads.
    """

    kind: str = "latest"  # latest | specific | all
    num_versions: int = 1
    versions: frozenset = frozenset()

    def __post_init__(self):
        if self.kind not in ("latest", "specific", "all"):
            raise ValueError(f"unknown version policy {self.kind!r}")
        if self.kind == "latest" and self.num_versions < 1:
            raise ValueError(f"latest needs num_versions >= 1, got {self.num_versions}")

    def candidates(self, on_disk: list[int]) -> list[int]:
        """The versions worth loading, highest first (`on_disk` is highest first)."""
        if self.kind == "specific":
            return [v for v in on_disk if v in self.versions]
        return list(on_disk)

    def describe(self) -> str:
        if self.kind == "latest":
            return f"latest {{ num_versions: {self.num_versions} }}"
        if self.kind == "specific":
            return f"specific {{ versions: {sorted(self.versions)} }}"
        return "all {}"


LATEST_ONE = VersionPolicy()


class ModelVersions:
    """Tracks the versions under one model's base path and holds the ones being served.

    Requests take a version with `lease` (a context manager), which counts it as in flight.
    A refresh that drops a version from the served set retires it: it takes no new requests,
    is reported UNLOADING while requests still hold it, and is unloaded (its model released,
    its local copy deleted) when the last of them ends.
    """

    def __init__(
        self,
        model_base_path,
        model_name: str,
        poll_seconds: float = 2.0,
        freeze_heap: bool = False,
        policy: VersionPolicy = LATEST_ONE,
    ):
        """`freeze_heap`: after each load, move every object then alive out of the garbage
        collector's reach (gc.freeze), for a process that serves (see `_settle_heap`)."""
        self.model_base_path = filesystem.path(model_base_path, "--model_base_path")
        self._remote = filesystem.is_object_store(self.model_base_path)
        # version -> local copy (object-store base path): served, retiring, or being loaded
        self._copies: dict[int, filesystem.WorkingCopy] = {}
        self.model_name = model_name
        self.poll_seconds = poll_seconds
        self.freeze_heap = freeze_heap
        self.policy = policy
        self._served: dict[int, Servable] = {}  # version -> servable, taking requests
        self._retiring: dict[Servable, int] = {}  # retired, with requests in flight
        self._inflight: dict[Servable, int] = {}  # servable -> requests holding it
        self._failed: dict[int, tuple[float, str]] = {}  # version -> (mtime, error)
        self._lock = threading.Lock()  # guards the four above
        self._refresh_lock = threading.Lock()  # one refresh at a time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._unloaded_since_settle = False

    def current(self) -> Servable | None:
        """The highest version served, or None."""
        with self._lock:
            return self._served[max(self._served)] if self._served else None

    def served_versions(self) -> list[int]:
        with self._lock:
            return sorted(self._served)

    def is_available(self, version: int) -> bool:
        with self._lock:
            return version in self._served

    def _not_found(self, version: int | None) -> ServingError:
        spec = "Latest" if version is None else "Specific"
        detail = self.model_name if version is None else f"{self.model_name}, {version}"
        return ServingError(f"Servable not found for request: {spec}({detail})", 404)

    def get(self, version: int | None = None) -> Servable:
        """A served version (None: the highest), without counting it as in flight: for
        reading its metadata. Requests that run the model use `lease`."""
        with self._lock:
            return self._pick(version)

    def _pick(self, version: int | None) -> Servable:
        if not self._served:
            raise self._not_found(version)
        if version is None:
            return self._served[max(self._served)]
        servable = self._served.get(version)
        if servable is None:
            raise self._not_found(version)
        return servable

    @contextlib.contextmanager
    def lease(self, version: int | None = None):
        """The served `version` (None: the highest), held for the `with` block: it is not
        unloaded before the block ends, even if it is retired meanwhile."""
        with self._lock:
            servable = self._pick(version)
            self._inflight[servable] = self._inflight.get(servable, 0) + 1
        try:
            yield servable
        finally:
            with self._lock:
                left = self._inflight[servable] - 1
                if left:
                    self._inflight[servable] = left
                else:
                    del self._inflight[servable]
                unload = not left and servable in self._retiring
                if unload:
                    del self._retiring[servable]
            if unload:
                self._unload(servable)

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

    def set_policy(self, policy: VersionPolicy) -> None:
        """A new version policy, applied by the next `refresh`."""
        self.policy = policy

    def refresh(self) -> Servable | None:
        """Serves what the version policy asks of the versions on disk; returns the highest.

        New versions are loaded, and warmed up, before the served set changes; the set is
        then replaced at once, and versions no longer in it are retired (see the class).
        """
        with self._refresh_lock:
            with self._lock:
                served = dict(self._served)
            policy = self.policy
            on_disk = self._versions_on_disk()
            with self._lock:
                for version in set(self._failed) - set(on_disk):
                    del self._failed[version]
            wanted: dict[int, Servable] = {}
            for version in policy.candidates(on_disk):
                if policy.kind == "latest" and len(wanted) >= policy.num_versions:
                    break
                if version in served:
                    wanted[version] = served[version]
                    continue
                servable = self._load(version)
                if servable is not None:
                    wanted[version] = servable
            if wanted.keys() != served.keys():
                self._publish(served, wanted)
            if self._unloaded_since_settle:
                self._unloaded_since_settle = False
                self._settle_heap()
            return wanted[max(wanted)] if wanted else None

    def _load(self, version: int) -> Servable | None:
        """The version loaded and warmed up, or None (the failure is kept for `status`)."""
        path = self.model_base_path / str(version)
        try:
            mtime = (
                filesystem.mtime(path / layout.SAVED_MODEL_FILE)
                if self._remote
                else path.stat().st_mtime
            )
        except (FileNotFoundError, OSError):
            return None
        failed = self._failed.get(version)
        if failed is not None and failed[0] == mtime:
            return None  # already failed; retried only when the directory changes
        try:
            servable = Servable(version, self._local_version(version, path))
        except Exception as e:  # any load failure keeps the old versions serving
            logger.error(
                "Failed to load %s version %d from %s: %s", self.model_name, version, path, e
            )
            with self._lock:
                self._failed[version] = (mtime, f"{type(e).__name__}: {e}")
            self._copies.pop(version, None)
            return None
        with self._lock:
            self._failed.pop(version, None)
        return servable

    def _publish(self, served: dict, wanted: dict) -> None:
        """Replaces the served set by `wanted` at once; retires what it drops."""
        dropped = [s for v, s in served.items() if v not in wanted]
        unload_now = []
        with self._lock:
            self._served = dict(wanted)
            for servable in dropped:
                if self._inflight.get(servable):
                    self._retiring[servable] = servable.version
                else:
                    unload_now.append(servable)
        added = sorted(set(wanted) - set(served))
        if served and wanted and len(added) == 1 and len(dropped) == 1 and len(wanted) == 1:
            logger.info(
                "Switched %s from version %d to %d",
                self.model_name,
                dropped[0].version,
                added[0],
            )
        else:
            for version in added:
                logger.info(
                    "Serving %s version %d from %s",
                    self.model_name,
                    version,
                    self.model_base_path / str(version),
                )
        if not wanted and served:
            logger.warning(
                "%s versions %s were removed from %s and no other version loads; unloading",
                self.model_name,
                sorted(served),
                self.model_base_path,
            )
        for servable in dropped:
            if servable not in unload_now:
                logger.info(
                    "%s version %d no longer takes requests; unloading it once the ones in "
                    "flight end",
                    self.model_name,
                    servable.version,
                )
        for servable in unload_now:
            self._unload(servable)
        self._settle_heap()
        self._unloaded_since_settle = False

    def retire_all(self) -> None:
        """Stops polling and retires every version (the model left the server's config)."""
        self.stop()
        with self._refresh_lock:
            with self._lock:
                served = dict(self._served)
            if served:
                self._publish(served, {})

    def _unload(self, servable: Servable) -> None:
        with self._lock:
            still_used = any(s.version == servable.version for s in self._served.values()) or (
                servable.version in self._retiring.values()
            )
        if not still_used:
            self._copies.pop(servable.version, None)  # deletes a local download
        servable.unload()
        self._unloaded_since_settle = True
        logger.info("Unloaded %s version %d", self.model_name, servable.version)

    def _local_version(self, version: int, path) -> pathlib.Path:
        """`path` itself when local; else a fresh local download of the version."""
        if not self._remote:
            return path
        self._copies.pop(version, None)
        copy = filesystem.WorkingCopy(path)
        copy.pull()
        self._copies[version] = copy
        return copy.local

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
            served = sorted(self._served)
            retiring = sorted(set(self._retiring.values()) - set(served))
            failed = dict(self._failed)
        entries = [(v, "AVAILABLE", "OK", "") for v in served]
        entries += [(v, "UNLOADING", "OK", "") for v in retiring]
        for v, (_, error) in failed.items():
            # Only failures of versions the policy would serve matter: newer than what a
            # `latest` policy serves (an older version is not meant to be served anyway).
            if self.policy.kind != "latest" or not served or v > min(served):
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
        if self._thread is not None or self.poll_seconds <= 0 or self._stop.is_set():
            return
        self._thread = threading.Thread(target=self._poll, name="model-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)
            self._thread = None

    def _poll(self):
        while not self._stop.wait(self.poll_seconds):
            try:
                self.refresh()
            except Exception:  # the poller must outlive one bad listing
                logger.exception("Polling %s failed", self.model_base_path)
