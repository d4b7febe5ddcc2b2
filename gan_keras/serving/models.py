"""The models one server serves: one from --model_base_path, or several from --model_config_file.

`ServedModels` maps model names to their `ModelVersions` (gan_keras.serving.versions) and
their version labels, and resolves what a REST or gRPC request names, the one resolution for
both APIs:

    (name)                   the highest served version
    (name, version=N)        version N, if served
    (name, label=L)          the version label L points at (TF Serving's version_labels)

With a config file, `reload_config` (every ``--model_config_file_poll_wait_seconds``)
re-reads it. A file that does not parse or validate is refused whole: the running config is
kept and ``ModelConfigError`` is logged. An accepted one is applied as TF Serving applies it:
new models and versions load, and warm up, before they take requests; models left out of the
file, and versions a policy drops, stop taking new requests and are unloaded once the
requests holding them end. Labels follow TF Serving's rule: a label may only point at a
version that is loaded (AVAILABLE) when the file is applied; with
``--allow_version_labels_for_unavailable_models`` a new label may point at any version, but
moving an existing label still needs the target loaded. One deliberate difference: at
startup the labels are checked after the first load, so a startup config may label the
versions it loads (tensorflow_model_server refuses every label at startup without the flag).
"""

import contextlib
import logging
import pathlib
import threading

from gan_keras.serving.codec import ServingError
from gan_keras.serving.model_config import ModelConfigError, ModelSpec, read_model_config_file
from gan_keras.serving.versions import ModelVersions, Servable
from gan_keras.storage import filesystem

logger = logging.getLogger(__name__)


class ServedModels:
    """Model name -> ModelVersions and labels; see the module docstring."""

    def __init__(
        self,
        models: dict[str, ModelVersions],
        labels: dict[str, dict[str, int]] | None = None,
        *,
        config_file=None,
        config_poll_seconds: float = 0.0,
        specs: list[ModelSpec] | None = None,
        file_system_poll_seconds: float = 2.0,
        freeze_heap: bool = False,
        allow_labels_for_unavailable: bool = False,
    ):
        if not models:
            raise ValueError("ServedModels needs at least one model")
        self._models = dict(models)
        self._labels = {name: dict(v) for name, v in (labels or {}).items()}
        self._specs = list(specs or [])
        self.config_file = pathlib.Path(config_file) if config_file else None
        self.config_poll_seconds = config_poll_seconds
        self.file_system_poll_seconds = file_system_poll_seconds
        self.freeze_heap = freeze_heap
        self.allow_labels_for_unavailable = allow_labels_for_unavailable
        self.default_name = next(iter(self._models))
        self._lock = threading.Lock()  # guards _models, _labels, _specs
        self._apply_lock = threading.Lock()  # one config change at a time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_refused: str | None = None

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def single(cls, versions: ModelVersions) -> "ServedModels":
        """One model, from --model_base_path, without labels."""
        return cls({versions.model_name: versions})

    @classmethod
    def from_config_file(
        cls,
        path,
        *,
        file_system_poll_seconds: float = 2.0,
        config_poll_seconds: float = 0.0,
        freeze_heap: bool = False,
        allow_labels_for_unavailable: bool = False,
    ) -> "ServedModels":
        """Loads every model of the file; its labels must then point at loaded versions
        (ModelConfigError otherwise, as a bad file is at startup)."""
        specs = read_model_config_file(path)
        models = {
            spec.name: ModelVersions(
                spec.base_path,
                spec.name,
                file_system_poll_seconds,
                freeze_heap,
                policy=spec.policy,
            )
            for spec in specs
        }
        served = cls(
            models,
            config_file=path,
            config_poll_seconds=config_poll_seconds,
            specs=specs,
            file_system_poll_seconds=file_system_poll_seconds,
            freeze_heap=freeze_heap,
            allow_labels_for_unavailable=allow_labels_for_unavailable,
        )
        for versions in models.values():
            versions.refresh()
        served._labels = served._checked_labels(specs, {}, models)
        return served

    # -- what requests see -------------------------------------------------------------------

    def names(self) -> list[str]:
        with self._lock:
            return list(self._models)

    def model(self, name: str) -> ModelVersions | None:
        with self._lock:
            return self._models.get(name)

    def _version_for(self, name: str, version: int | None, label: str | None):
        """(ModelVersions, version or None) for a request; unknown model -> 404, unknown
        label -> 400 (TF Serving's INVALID_ARGUMENT). Called with self._lock held: what the
        caller then does with the version is done before a config change can move the label
        (see `lease`)."""
        versions = self._models.get(name)
        labels = self._labels.get(name, {})
        if versions is None:
            spec = "Latest" if version is None else "Specific"
            detail = name if version is None else f"{name}, {version}"
            raise ServingError(f"Servable not found for request: {spec}({detail})", 404)
        if label is not None:
            if label not in labels:
                raise ServingError(f"Unrecognized servable version label: {label}", 400)
            version = labels[label]
        return versions, version

    @contextlib.contextmanager
    def lease(self, name: str, version: int | None = None, label: str | None = None):
        """The servable a request names, held (not unloaded) for the `with` block.

        The label is read and its version leased under self._lock, which a config change
        holds to move labels (`_apply`): a request that read the old label has its version
        leased before the change can retire it, so it finishes on it, and one that reads the
        new label gets the new version; neither finds the version gone (a 404)."""
        with contextlib.ExitStack() as held:
            with self._lock:
                versions, version = self._version_for(name, version, label)
                servable = held.enter_context(versions.lease(version))
            yield servable

    def resolve(self, name: str, version: int | None = None, label: str | None = None) -> Servable:
        """The servable a request names, not held: for reading its metadata."""
        with self._lock:
            versions, version = self._version_for(name, version, label)
            return versions.get(version)

    def status(self, name: str, version: int | None = None, label: str | None = None) -> list:
        with self._lock:
            if name not in self._models:
                raise ServingError(f"Could not find any versions of model {name}", 404)
            versions, version = self._version_for(name, version, label)
            return versions.status(version)

    def served_versions(self) -> dict[str, int | None]:
        """Model name -> the highest version served (None: none), for the metrics."""
        with self._lock:
            models = dict(self._models)
        return {name: getattr(v.current(), "version", None) for name, v in models.items()}

    # -- the single-model conveniences (tests, benchmarks) -----------------------------------

    def current(self) -> Servable | None:
        """The first model's highest served version."""
        return self.model(self.default_name).current()

    def refresh(self) -> None:
        """Looks at every model's base path now (as the pollers do)."""
        with self._lock:
            models = list(self._models.values())
        for versions in models:
            versions.refresh()

    # -- the config file ---------------------------------------------------------------------

    def _checked_labels(self, specs, old_labels: dict, models: dict) -> dict:
        """The label map of `specs`, by TF Serving's rule (see the module docstring)."""
        new = {}
        for spec in specs:
            versions = models.get(spec.name)
            for label, version in spec.labels:
                available = versions is not None and versions.is_available(version)
                existing = old_labels.get(spec.name, {}).get(label)
                moving = existing is not None and existing != version
                if not available and (not self.allow_labels_for_unavailable or moving):
                    raise ModelConfigError(
                        f"Request to assign label to version {version} of model {spec.name}, "
                        "which is not currently available for inference"
                    )
                new.setdefault(spec.name, {})[label] = version
        return new

    def reload_config(self) -> bool:
        """Re-reads the config file and applies it if it changed; False if it was refused."""
        if self.config_file is None:
            return True
        with self._apply_lock:
            try:
                specs = read_model_config_file(self.config_file)
            except ModelConfigError as e:
                self._refuse(str(e))
                return False
            with self._lock:
                if specs == self._specs:
                    self._last_refused = None  # back to the running config
                    return True
                old_models, old_labels = dict(self._models), dict(self._labels)
            try:
                # Labels first, against what is loaded now: a refused file changes nothing.
                labels = self._checked_labels(specs, old_labels, old_models)
            except ModelConfigError as e:
                self._refuse(str(e))
                return False
            self._last_refused = None
            self._apply(specs, labels, old_models)
            return True

    def _refuse(self, message: str) -> None:
        if message != self._last_refused:  # once per distinct problem, not every poll
            logger.error(
                "ModelConfigError: refused %s, keeping the running config: %s",
                self.config_file,
                message,
            )
        self._last_refused = message

    def _apply(self, specs: list[ModelSpec], labels: dict, old_models: dict) -> None:
        names = {spec.name for spec in specs}
        with self._lock:
            # The labels move first, while every version they leave is still served (the new
            # ones point at loaded versions: `_checked_labels`). Moving them after the
            # versions below unloaded the ones a label left answered its requests with 404
            # for as long as the unload took. Labels of models that leave go with them.
            kept = {name: v for name, v in self._labels.items() if name not in names}
            self._labels = kept | labels
        models, added = {}, []
        for spec in specs:
            versions = old_models.get(spec.name)
            same_path = versions is not None and str(versions.model_base_path) == str(
                filesystem.path(spec.base_path, "base_path")
            )
            if same_path:
                versions.set_policy(spec.policy)
            else:
                versions = ModelVersions(
                    spec.base_path,
                    spec.name,
                    self.file_system_poll_seconds,
                    self.freeze_heap,
                    policy=spec.policy,
                )
                added.append(versions)
            versions.refresh()  # loads (and warms up) before the switch
            models[spec.name] = versions
        with self._lock:
            self._models, self._labels, self._specs = models, labels, specs
            self.default_name = next(iter(models))
        for versions in added:
            if not self._stop.is_set():
                versions.start()
        for name, versions in old_models.items():
            if models.get(name) is not versions:
                versions.retire_all()
        logger.info(
            "Applied %s: %s",
            self.config_file,
            "; ".join(
                f"{s.name} ({s.policy.describe()}, labels {s.label_map or '{}'})" for s in specs
            ),
        )

    # -- polling -----------------------------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            models = list(self._models.values())
        for versions in models:
            versions.start()
        if self.config_file is not None and self.config_poll_seconds > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._poll, name="config-poller", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        with self._lock:
            models = list(self._models.values())
        for versions in models:
            versions.stop()

    def _poll(self) -> None:
        while not self._stop.wait(self.config_poll_seconds):
            try:
                self.reload_config()
            except Exception:  # the poller must outlive one bad apply
                logger.exception("Reloading %s failed", self.config_file)
