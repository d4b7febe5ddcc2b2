"""Fine-tuning: starting a training run from another run's weights (`train.init_from`), and
freezing the discriminator's first layers (`train.freeze_d_layers`, "Freeze the
Discriminator", Mo et al. 2020).

A parent is one of
  - a workdir whose train stage has checkpoints (<path>/train/checkpoints/), or a train directory
    itself (e.g. a `train.replaced-<time>/` that --force moved aside): its best checkpoint by
    in-training FD when it trained with train.eval_every > 0, else its latest; G, D, the EMA G and,
    with train.init_optimizer, both optimizers' state;
  - a checkpoint prefix (<dir>/ckpt-<step>, as tf.train.latest_checkpoint names it);
  - an export: a SavedModel version directory or a base path holding integer versions (the
    highest is used). A SavedModel holds only the (EMA) generator, so G and the EMA G start from
    it and D starts from random weights (logged); freezing D's layers and restoring optimiser
    state need a checkpoint and are refused.

The new run is a fresh start: its step counts from 0 and its data may differ from the parent's
(the parent's ingest fingerprint is recorded beside this run's). Shapes must agree: a variable
whose shape differs names itself and both shapes before any step runs.
"""

import dataclasses
import pathlib
import re

import keras
import tensorflow as tf
from absl import logging

from gan_keras.export import layout
from gan_keras.storage import atomic
from pipeline import checkpoints, runner
from pipeline import workdir as workdir_layout

KIND_TRAIN_DIR, KIND_CHECKPOINT, KIND_EXPORT = "train checkpoints", "checkpoint", "export"


class FineTuneError(ValueError):
    """train.init_from cannot initialise this run (missing, incompatible or unsupported)."""


@dataclasses.dataclass(frozen=True)
class Parent:
    """The run a fine-tuning run starts from."""

    init_from: str  # train.init_from as given
    kind: str  # KIND_TRAIN_DIR | KIND_CHECKPOINT | KIND_EXPORT
    path: pathlib.Path  # the checkpoint prefix or the SavedModel version directory
    step: int | None  # the parent's training step of those weights
    checkpoint: str | None = None  # checkpoints.CHECKPOINT_BEST | CHECKPOINT_LATEST
    # The parent's train-stage output fingerprint (or the SavedModel's fingerprint) and the
    # fingerprint of the ingested data it trained on, from its manifest when it has one.
    fingerprint: str | None = None
    ingest_fingerprint: str | None = None
    train_dir: pathlib.Path | None = None  # the parent's train directory, for checkpoints

    @property
    def has_discriminator(self) -> bool:
        return self.kind != KIND_EXPORT

    def record(self) -> dict:
        """What the train manifest's summary keeps about the parent."""
        return {
            "init_from": self.init_from,
            "kind": self.kind,
            "path": str(self.path),
            "step": self.step,
            "checkpoint": self.checkpoint,
            "fingerprint": self.fingerprint,
            "ingest_fingerprint": self.ingest_fingerprint,
        }


def _has_checkpoint(directory: pathlib.Path) -> bool:
    return tf.train.latest_checkpoint(str(directory)) is not None


def _from_train_dir(init_from: str, train_dir: pathlib.Path, checkpoint_path=None) -> Parent:
    """The parent's train directory; its best or latest checkpoint unless `checkpoint_path`."""
    manifest = runner.read_manifest(train_dir) or {}
    kind = KIND_TRAIN_DIR if checkpoint_path is None else KIND_CHECKPOINT
    if checkpoint_path is None:
        # The checkpoint the parent's own evaluate and export used: its best when it evaluated
        # while training (the manifest says so; without one, whichever best/ holds).
        eval_every = manifest.get("config", {}).get("train.eval_every")
        prefer_best = eval_every is None or int(eval_every) > 0
        info = checkpoints.select_checkpoint(train_dir, prefer_best=prefer_best)
        checkpoint_path, checkpoint = info["checkpoint_path"], info["checkpoint"]
    else:
        checkpoint = pathlib.Path(checkpoint_path).name
    try:
        step = checkpoints.checkpoint_step(str(checkpoint_path))
    except (IndexError, ValueError):
        step = None  # a prefix not named <name>-<step>
    return Parent(
        init_from=init_from,
        kind=kind,
        path=pathlib.Path(checkpoint_path),
        step=step,
        checkpoint=checkpoint,
        fingerprint=manifest.get("output_fingerprint"),
        ingest_fingerprint=manifest.get("inputs", {}).get(workdir_layout.INGEST),
        train_dir=train_dir,
    )


def _from_export(init_from: str, version_dir: pathlib.Path) -> Parent:
    info_path = layout.asset_path(version_dir, layout.MODEL_INFO_ASSET)
    info = atomic.read_json(info_path) if info_path.exists() else {}
    try:
        fingerprint = tf.saved_model.experimental.read_fingerprint(str(version_dir)).singleprint()
    except (ValueError, OSError, tf.errors.OpError):
        fingerprint = None  # older SavedModels have no fingerprint.pb
    return Parent(
        init_from=init_from,
        kind=KIND_EXPORT,
        path=version_dir,
        step=info.get("checkpoint_step"),
        checkpoint=info.get("checkpoint"),
        fingerprint=fingerprint,
    )


def resolve_parent(init_from: str) -> Parent:
    """What `train.init_from` names, found from the file system alone (no model is built)."""
    field = f"train.init_from={init_from!r}"
    if "\x00" in init_from:
        raise FineTuneError(f"{field}: a path cannot hold a NUL character")
    path = pathlib.Path(init_from).expanduser().resolve()
    if not path.exists():
        if pathlib.Path(f"{path}.index").exists():  # a checkpoint prefix, .../ckpt-<step>
            return _from_train_dir(init_from, path.parent.parent, checkpoint_path=path)
        raise FineTuneError(f"{field}: no such file or directory ({path})")
    if not path.is_dir():
        raise FineTuneError(
            f"{field} is a file; name a workdir, a train directory, a checkpoint prefix "
            "(.../ckpt-<step>, without .index) or an export directory"
        )
    if (path / layout.SAVED_MODEL_FILE).exists():
        return _from_export(init_from, path)
    if layout.list_versions(path):
        return _from_export(init_from, layout.version_dir(path))
    train_dir = workdir_layout.train_dir(path)
    if _has_checkpoint(train_dir / "checkpoints"):
        return _from_train_dir(init_from, train_dir)
    if _has_checkpoint(path / "checkpoints"):
        return _from_train_dir(init_from, path)
    export_base = workdir_layout.export_base_path(path)
    if layout.list_versions(export_base):
        return _from_export(init_from, layout.version_dir(export_base))
    raise FineTuneError(
        f"{field} holds nothing to start from: not a workdir with train checkpoints "
        f"({train_dir / 'checkpoints'}), a train directory, a checkpoint prefix, nor an export "
        "(a SavedModel version directory or a base path of integer versions)"
    )


def resolve_parent_for_workdir(config, workdir) -> Parent | None:
    """train.init_from's parent (None when off); refuses this workdir's own train directory."""
    if not config.train.init_from:
        return None
    parent = resolve_parent(config.train.init_from)
    train_dir = workdir_layout.train_dir(workdir).resolve()
    if parent.train_dir is not None and parent.train_dir.resolve() == train_dir:
        raise FineTuneError(
            f"train.init_from={config.train.init_from!r} is this run's own {train_dir}: a run "
            "resumes from its checkpoints without init_from; to start over from them, move it "
            f"aside (mv {train_dir} {train_dir}.parent) and set train.init_from to that directory"
        )
    return parent


def check_parent_options(parent: Parent, *, init_optimizer: bool, freeze_d_layers: int) -> None:
    """Refuses what a parent cannot provide (an export has no D and no optimiser state)."""
    if parent.has_discriminator:
        return
    if init_optimizer:
        raise FineTuneError(
            f"train.init_optimizer=True with train.init_from={parent.init_from!r}: an export "
            "holds only the generator, no optimiser state; set train.init_optimizer=False or "
            "start from the parent's workdir"
        )
    if freeze_d_layers:
        raise FineTuneError(
            f"train.freeze_d_layers={freeze_d_layers} with train.init_from="
            f"{parent.init_from!r}: an export holds no discriminator, so its layers would be "
            "frozen at random weights; set train.freeze_d_layers=0 or start from the parent's "
            "workdir"
        )


# --------------------------------------------------------------------------- freezing D


# Layers that normalise what the layer before them computed: part of that layer's block.
_NORMALIZATIONS = (
    keras.layers.BatchNormalization,
    keras.layers.LayerNormalization,
    keras.layers.GroupNormalization,
)


def discriminator_layer_blocks(discriminator: keras.Model) -> list[list[keras.layers.Layer]]:
    """D's weighted layers from the input (highest resolution) on, a normalisation layer joined
    to the layer it normalises: what `train.freeze_d_layers` counts."""
    blocks: list[list[keras.layers.Layer]] = []
    for layer in discriminator.layers:
        if not layer.weights:
            continue
        if isinstance(layer, _NORMALIZATIONS) and blocks:
            blocks[-1].append(layer)
        else:
            blocks.append([layer])
    return blocks


def check_freeze_count(discriminator: keras.Model, count: int) -> list[list[keras.layers.Layer]]:
    """The blocks; fails naming them when `count` leaves no layer of D to train."""
    blocks = discriminator_layer_blocks(discriminator)
    if not 0 <= count < len(blocks):
        names = ", ".join(block[0].name for block in blocks)
        raise FineTuneError(
            f"train.freeze_d_layers={count} is out of range: the discriminator has "
            f"{len(blocks)} layers ({names}); freeze 0 to {len(blocks) - 1} of them (at least "
            "the last must train)"
        )
    return blocks


def freeze_discriminator_layers(discriminator: keras.Model, count: int) -> list[str]:
    """Freezes D's first `count` blocks; returns their layers' names.

    Call after compiling: the optimiser is built over every D variable either way, so checkpoints
    with and without frozen layers have the same layout. A frozen BatchNormalization runs in
    inference mode (Keras does that for trainable=False), so nothing in a frozen block changes:
    neither weights nor moving statistics.
    """
    frozen = []
    for block in check_freeze_count(discriminator, count)[:count]:
        for layer in block:
            layer.trainable = False
            frozen.append(layer.name)
    return frozen


# ------------------------------------------------------------------------- initialising


_INCOMPATIBLE = re.compile(
    r"incompatible tensor with shape (?P<theirs>\([^)]*\)).*?variable with shape "
    r"(?P<ours>\([^)]*\)) and name (?P<name>[^\s:]+)",
    re.DOTALL,
)


def _restore_network(parent: Parent, key: str, network: keras.Model, what: str) -> None:
    """Restores `network` from the parent's checkpoint entry `key`, failing with the variable
    and both shapes when the architectures differ."""
    hint = (
        "fine-tuning needs the parent's architecture (the same model.* fields, data.resolution "
        "and data.channels, and for conditional models the same number of classes)"
    )
    try:
        status = tf.train.Checkpoint(**{key: network}).restore(str(parent.path))
    except ValueError as e:
        match = _INCOMPATIBLE.search(str(e))
        if match is None:
            raise FineTuneError(f"train.init_from={parent.init_from!r}: {what}: {e}") from e
        raise FineTuneError(
            f"train.init_from={parent.init_from!r}: the {what}'s variable {match['name']} has "
            f"shape {match['theirs']} in the parent ({parent.path}) and {match['ours']} in this "
            f"run's model; {hint}"
        ) from None
    status.expect_partial()
    try:
        status.assert_existing_objects_matched()
    except AssertionError as e:
        raise FineTuneError(
            f"train.init_from={parent.init_from!r}: this run's {what} has layers the parent's "
            f"({parent.path}) lacks; {hint}. TensorFlow: {str(e)[:400]}"
        ) from None


def _checkpoint_has(path, key: str) -> bool:
    names = tf.train.load_checkpoint(str(path)).get_variable_to_shape_map()
    return any(name.startswith(f"{key}/") for name in names)


def _plain_name(name: str) -> str:
    """'dense_2/kernel:0' -> 'dense/kernel': a variable's name without Keras's per-process
    numbering, which differs between the exporting process and this one."""
    name = name.split(":")[0]
    return "/".join(re.sub(r"_\d+$", "", part) for part in name.split("/"))


def _assign_from_export(parent: Parent, network: keras.Model) -> None:
    exported = list(tf.saved_model.load(str(parent.path)).variables)
    ours = network.variables
    if len(exported) != len(ours):
        raise FineTuneError(
            f"train.init_from={parent.init_from!r}: the exported generator has {len(exported)} "
            f"variables, this run's has {len(ours)}; fine-tuning needs the parent's architecture"
        )
    for theirs, mine in zip(exported, ours, strict=True):
        if tuple(theirs.shape) != tuple(mine.shape) or _plain_name(theirs.name) != _plain_name(
            mine.path
        ):
            raise FineTuneError(
                f"train.init_from={parent.init_from!r}: the generator's variable {mine.path} has "
                f"shape {tuple(mine.shape)} in this run's model, but the export's corresponding "
                f"variable {theirs.name.split(':')[0]} has shape {tuple(theirs.shape)}; "
                "fine-tuning needs the parent's architecture"
            )
    for theirs, mine in zip(exported, ours, strict=True):
        mine.assign(theirs)


def initialise(model, parent: Parent, *, config) -> dict:
    """Sets the freshly built `model` (gan_keras.GAN or ImageToImageGAN, compiled) to the
    parent's weights, and its optimisers' state with train.init_optimizer. Returns the manifest
    record."""
    t = config.train
    check_parent_options(
        parent, init_optimizer=t.init_optimizer, freeze_d_layers=int(t.freeze_d_layers)
    )
    record = parent.record()
    if parent.kind == KIND_EXPORT:
        _assign_from_export(parent, model.generator)
        if model.ema_generator is not None:
            model.ema_generator.set_weights(model.generator.get_weights())
        logging.warning(
            "[train] init_from %s is an export: G%s start from its generator; a SavedModel holds "
            "no discriminator, so D starts from random weights",
            parent.path,
            " and the EMA G" if model.ema_generator is not None else "",
        )
        record.update(discriminator="random (an export holds none)", optimizer_state=False)
        return record
    _restore_network(parent, "generator", model.generator, "generator")
    _restore_network(parent, "discriminator", model.discriminator, "discriminator")
    if model.ema_generator is not None:
        if _checkpoint_has(parent.path, "ema_generator"):
            _restore_network(parent, "ema_generator", model.ema_generator, "EMA generator")
        else:
            # A parent trained without EMA: the average starts at its generator.
            model.ema_generator.set_weights(model.generator.get_weights())
    if t.init_optimizer:
        tf.train.Checkpoint(g_optimizer=model.g_optimizer, d_optimizer=model.d_optimizer).restore(
            str(parent.path)
        ).expect_partial()
        # The moments carry over; the step count and learning rates are this run's.
        for optimizer, rate in (
            (model.g_optimizer, t.g_learning_rate),
            (model.d_optimizer, t.d_learning_rate),
        ):
            optimizer.iterations.assign(0)
            if not t.lr_decay_fraction:  # a schedule is this run's already
                optimizer.learning_rate.assign(rate)
    record.update(discriminator="parent", optimizer_state=bool(t.init_optimizer))
    logging.info(
        "[train] initialised G, D%s%s from %s (step %s of %s)",
        ", the EMA G" if model.ema_generator is not None else "",
        " and both optimisers' state" if t.init_optimizer else "",
        parent.path,
        parent.step,
        parent.init_from,
    )
    return record
