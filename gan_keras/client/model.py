"""An exported model as the client sees it: loading a version, its signatures and model_info.json.

The functions here (and in the other gan_keras.client modules) that take a
``model`` work on anything with ``run(signature_name, inputs) -> {name: ndarray}``,
``signatures``, ``input_specs`` ({signature: {input: TensorSpec}}) and ``info``
(model_info.json): a `LoadedModel` here (the command line, pipeline.generate) or
a loaded version of the model server (gan_keras.serving.versions.Servable), so
both give the same images. Bad arguments raise `RequestError` (a ValueError),
which the server answers with HTTP 400. `require_sampling_model` /
`require_image_to_image` reject the other kind of model with a message saying
what to use instead.
"""

import json
import pathlib

import tensorflow as tf

from gan_keras.export import layout


class RequestError(ValueError):
    """An argument the model cannot take (a client error: HTTP 400 in the server)."""


# --- a SavedModel version loaded for the command line ---------------------------------


def clean_tf_message(message: str) -> str:
    """The assertion line of an in-graph check's error (or its first meaningful line): graph
    errors wrap it in "Graph execution error", the node and a stack trace."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    for line in lines:
        if line.startswith("assertion failed:"):
            return line
    noise = ("Graph execution error", "Detected at node", "<stack traces", "[[{{node")
    useful = [line for line in lines if not line.startswith(noise)]
    return (useful or lines or ["invalid argument"])[0]


class LoadedModel:
    """One version of an exported generator, with the same interface as the server's Servable."""

    def __init__(self, path):
        self.path = pathlib.Path(path)
        self._model = tf.saved_model.load(str(self.path))
        self.signatures = dict(self._model.signatures.items())
        self.input_specs = {
            name: dict(fn.structured_input_signature[1]) for name, fn in self.signatures.items()
        }
        info_path = layout.asset_path(self.path, layout.MODEL_INFO_ASSET)
        self.info = json.loads(info_path.read_text()) if info_path.exists() else {}
        self.num_classes = int(self.info.get("num_classes", 0))

    def run(self, signature_name: str, inputs: dict) -> dict:
        require_signature(self, signature_name)
        fn = self.signatures[signature_name]
        try:
            outputs = fn(**{k: tf.constant(v) for k, v in inputs.items()})
        except tf.errors.InvalidArgumentError as e:
            # In-graph checks (e.g. a label out of range) report "assertion failed: [...]".
            raise RequestError(
                f"{self.path} rejected the request: {clean_tf_message(e.message)}"
            ) from None
        return {k: v.numpy() for k, v in outputs.items()}


def load_model(model_base_path, version: int | None = None) -> LoadedModel:
    """The given version (default: the highest) under `model_base_path`."""
    return LoadedModel(layout.version_dir(model_base_path, version))


def which_model(model) -> str:
    # The server's versions say which version; the command line names the directory.
    version = getattr(model, "version", None)
    return f"version {version}" if version is not None else str(model.path)


def require_signature(model, name: str) -> None:
    if name not in model.signatures:
        raise RequestError(
            f"{which_model(model)} has no '{name}' signature (has {sorted(model.signatures)})"
        )


def takes_label(model, signature_name: str = "sample") -> bool:
    """Whether a signature takes labels ("label", or interpolate's "label_a" and "label_b")."""
    require_signature(model, signature_name)
    return any(
        name == "label" or name.startswith("label_") for name in model.input_specs[signature_name]
    )


def image_shape(model) -> tuple[int, int, int] | None:
    """(H, W, C) from model_info.json, or None for an export without it."""
    shape = model.info.get("image_shape")
    return tuple(int(d) for d in shape) if shape else None


def task_name(model) -> str:
    """model_info.json's task name; "generate" (sampling) for exports without a task."""
    task = model.info.get("task")
    name = task.get("name") if isinstance(task, dict) else None
    return str(name) if name else "generate"


def is_image_to_image(model) -> bool:
    """True for a super_resolution / inpainting / translation export (not a sampling one)."""
    return task_name(model) != "generate"


def require_sampling_model(model, what: str, instead: str) -> None:
    """Rejects an image-to-image model for `what` (an endpoint or flag of sampling models)."""
    if is_image_to_image(model):
        raise RequestError(
            f"{what} is for sampling models, but {which_model(model)} is an "
            f"image-to-image model (task {task_name(model)}): {instead}"
        )


def require_image_to_image(model, what: str, instead: str) -> None:
    """Rejects a sampling model for `what` (an endpoint or flag of image-to-image models)."""
    if not is_image_to_image(model):
        raise RequestError(
            f"{what} is for image-to-image models (super_resolution, inpainting, "
            f"translation), but {which_model(model)} is a sampling model (task "
            f"generate): {instead}"
        )
