"""--model_config_file: TensorFlow Serving's ModelServerConfig, in its text format.

    model_config_list {
      config {
        name: "generator"
        base_path: "/models/generator"
        model_platform: "tensorflow"
        model_version_policy { specific { versions: 1 versions: 2 } }
        version_labels { key: "stable" value: 1 }
        version_labels { key: "canary" value: 2 }
      }
      config { name: "upscaler" base_path: "/models/sr" }
    }

Parsed with tensorflow-serving-api's own message (tensorflow_serving.config.
model_server_config_pb2), so a file tensorflow_model_server reads is read the same way.
`parse_model_config` checks everything that can be checked without loading a model (names,
paths, policies, label names) and raises `ModelConfigError`, naming what is wrong; whether a
label points at a loaded version is checked where the versions are
(gan_keras.serving.models).
"""

import dataclasses
import pathlib
import re

from gan_keras.serving.versions import VersionPolicy
from gan_keras.storage import filesystem

# ModelConfig fields this server implements; others, when set, are refused by name.
SUPPORTED_FIELDS = ("name", "base_path", "model_platform", "model_version_policy", "version_labels")
# A label is one REST path segment (/v1/models/NAME/labels/LABEL).
LABEL_PATTERN = re.compile(r"[A-Za-z0-9_.-]+")


class ModelConfigError(ValueError):
    """A --model_config_file that is refused; the message says which model and field."""


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One model of the config."""

    name: str
    base_path: str
    policy: VersionPolicy
    labels: tuple  # ((label, version), ...), sorted

    @property
    def label_map(self) -> dict:
        return dict(self.labels)


def _messages():
    try:
        from tensorflow_serving.config import model_server_config_pb2
    except ImportError:
        raise ModelConfigError(
            "--model_config_file needs tensorflow-serving-api for TF Serving's ModelServerConfig "
            "message: pip install --no-deps tensorflow-serving-api (see docs/serving.md)"
        ) from None
    return model_server_config_pb2


def _policy(config, where: str) -> VersionPolicy:
    if not config.HasField("model_version_policy"):
        return VersionPolicy()  # TF Serving's default: latest { num_versions: 1 }
    policy = config.model_version_policy
    choice = policy.WhichOneof("policy_choice")
    if choice is None or choice == "latest":
        # TF Serving serves at least one: num_versions 0 (unset) means 1.
        return VersionPolicy("latest", max(1, policy.latest.num_versions))
    if choice == "all":
        return VersionPolicy("all")
    versions = list(policy.specific.versions)
    if not versions:
        raise ModelConfigError(f"{where}: model_version_policy specific {{}} lists no versions")
    if any(v < 0 for v in versions):
        raise ModelConfigError(f"{where}: specific versions must be >= 0, got {versions}")
    return VersionPolicy("specific", versions=frozenset(versions))


def parse_model_config(text: str, source: str = "--model_config_file") -> list[ModelSpec]:
    """The models of a ModelServerConfig in text format; anything refused -> ModelConfigError."""
    from google.protobuf import text_format

    pb2 = _messages()
    message = pb2.ModelServerConfig()
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as e:
        raise ModelConfigError(f"{source}: {e}") from None
    if message.WhichOneof("config") == "custom_model_config":
        raise ModelConfigError(f"{source}: custom_model_config is not supported")
    if not message.HasField("model_config_list") or not message.model_config_list.config:
        raise ModelConfigError(f"{source}: no model_config_list {{ config {{ ... }} }} entries")
    specs, names = [], set()
    for index, config in enumerate(message.model_config_list.config):
        where = f"{source}: config #{index + 1}" + (f" ({config.name})" if config.name else "")
        for descriptor, _ in config.ListFields():
            if descriptor.name not in SUPPORTED_FIELDS:
                raise ModelConfigError(f"{where}: field {descriptor.name} is not supported")
        if not config.name:
            raise ModelConfigError(f"{where}: name is empty")
        if "/" in config.name or ":" in config.name:
            raise ModelConfigError(f"{where}: name may not contain '/' or ':'")
        if config.name in names:
            raise ModelConfigError(f"{where}: model name {config.name} appears twice")
        names.add(config.name)
        if not config.base_path:
            raise ModelConfigError(f"{where}: base_path is empty")
        try:
            filesystem.check(config.base_path, f"{where}: base_path")
        except filesystem.PathError as e:
            raise ModelConfigError(str(e)) from None
        if config.model_platform not in ("", "tensorflow"):
            raise ModelConfigError(
                f"{where}: model_platform {config.model_platform!r} is not supported "
                "(only 'tensorflow')"
            )
        labels = dict(config.version_labels)
        for label, version in labels.items():
            if not LABEL_PATTERN.fullmatch(label):
                raise ModelConfigError(
                    f"{where}: version label {label!r} must be letters, digits, '_', '-', '.'"
                )
            if version < 0:
                raise ModelConfigError(f"{where}: version label {label} -> {version} is negative")
        specs.append(
            ModelSpec(
                config.name, config.base_path, _policy(config, where), tuple(sorted(labels.items()))
            )
        )
    return specs


def read_model_config_file(path) -> list[ModelSpec]:
    path = pathlib.Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ModelConfigError(f"--model_config_file {path}: {e}") from None
    return parse_model_config(text, f"--model_config_file {path}")
