"""--batching_parameters_file: TF Serving's ``BatchingParameters``, in its text format::

    max_batch_size { value: 32 }        # most rows one merged call runs (default 1000)
    batch_timeout_micros { value: 0 }   # how long the first request of a batch waits for
                                        # more before the batch runs anyway (default 0: run
                                        # as soon as a batch thread is free)
    max_enqueued_batches { value: 10 }  # batches waiting per queue; a request that needs
                                        # one more is answered 503 / UNAVAILABLE at once
    num_batch_threads { value: 2 }      # batches running at once (default: one per CPU)
    allowed_batch_sizes: 8              # optional: a merged call is padded up to the next
    allowed_batch_sizes: 32             # of these (the last must equal max_batch_size)

parsed with tensorflow_serving's own message where installed, checked field by field (a bad
value, or a field this server does not implement, is refused by name), with
BasicBatchScheduler's defaults for what the file leaves out. The batcher that uses them is
gan_keras.serving.batching.
"""

import dataclasses
import os
import pathlib

# The fields this server implements; the proto's others are refused by name if set, except
# thread_pool_name (a name for the threads, without effect here).
SUPPORTED_FIELDS = (
    "max_batch_size",
    "batch_timeout_micros",
    "max_enqueued_batches",
    "num_batch_threads",
    "allowed_batch_sizes",
)
IGNORED_FIELDS = ("thread_pool_name",)


class BatchingConfigError(ValueError):
    """A --batching_parameters_file that cannot be used; the message names the field."""


@dataclasses.dataclass(frozen=True)
class BatchingParameters:
    """TF Serving's BatchingParameters, with its defaults (BasicBatchScheduler's options)."""

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10
    num_batch_threads: int = dataclasses.field(default_factory=lambda: len(os.sched_getaffinity(0)))
    allowed_batch_sizes: tuple[int, ...] = ()

    def __post_init__(self):
        def positive(name):
            if getattr(self, name) < 1:
                raise BatchingConfigError(f"{name} must be >= 1, got {getattr(self, name)}")

        for name in ("max_batch_size", "max_enqueued_batches", "num_batch_threads"):
            positive(name)
        if self.batch_timeout_micros < 0:
            raise BatchingConfigError(
                f"batch_timeout_micros must be >= 0, got {self.batch_timeout_micros}"
            )
        sizes = self.allowed_batch_sizes
        if sizes:
            if any(s < 1 for s in sizes):
                raise BatchingConfigError(f"allowed_batch_sizes must be >= 1, got {list(sizes)}")
            if any(b <= a for a, b in zip(sizes[:-1], sizes[1:], strict=True)):
                raise BatchingConfigError(
                    f"allowed_batch_sizes must be in increasing order, got {list(sizes)}"
                )
            if sizes[-1] != self.max_batch_size:
                raise BatchingConfigError(
                    f"the last entry of allowed_batch_sizes ({sizes[-1]}) must equal "
                    f"max_batch_size ({self.max_batch_size})"
                )

    def padded_size(self, rows: int) -> int:
        """The batch size a merged call of `rows` rows runs at."""
        for size in self.allowed_batch_sizes:
            if size >= rows:
                return size
        return rows


def _message_class():
    """tensorflow_serving's BatchingParameters message, or an equivalent one.

    tensorflow-serving-api's wheel ships the API and config protos but not
    session_bundle_config.proto; the same message (name, field names and numbers as TF
    Serving's) is then built here, so the same files parse the same way.
    """
    try:
        from tensorflow_serving.servables.tensorflow import session_bundle_config_pb2

        return session_bundle_config_pb2.BatchingParameters
    except ImportError:
        pass
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)
    file = descriptor_pb2.FileDescriptorProto(
        name="gan_keras/serving/batching_parameters.proto",
        package="tensorflow.serving",
        syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )
    message = file.message_type.add(name="BatchingParameters")
    field = descriptor_pb2.FieldDescriptorProto
    for number, name, type_name in (
        (1, "max_batch_size", ".google.protobuf.Int64Value"),
        (2, "batch_timeout_micros", ".google.protobuf.Int64Value"),
        (3, "max_enqueued_batches", ".google.protobuf.Int64Value"),
        (4, "num_batch_threads", ".google.protobuf.Int64Value"),
        (5, "thread_pool_name", ".google.protobuf.StringValue"),
    ):
        message.field.add(
            name=name,
            number=number,
            label=field.LABEL_OPTIONAL,
            type=field.TYPE_MESSAGE,
            type_name=type_name,
        )
    message.field.add(
        name="allowed_batch_sizes", number=6, label=field.LABEL_REPEATED, type=field.TYPE_INT64
    )
    message.field.add(
        name="pad_variable_length_inputs",
        number=7,
        label=field.LABEL_OPTIONAL,
        type=field.TYPE_BOOL,
    )
    pool.Add(file)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters")
    )


def parse_batching_parameters(text: str, source: str = "batching parameters") -> BatchingParameters:
    """BatchingParameters from TF Serving's text format; anything else -> BatchingConfigError."""
    from google.protobuf import text_format

    message = _message_class()()
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as e:
        raise BatchingConfigError(f"{source}: {e}") from None
    values = {}
    for descriptor, value in message.ListFields():
        name = descriptor.name
        if name in IGNORED_FIELDS:
            continue
        if name not in SUPPORTED_FIELDS:
            raise BatchingConfigError(
                f"{source}: field {name} is not supported by this server "
                f"(supported: {', '.join(SUPPORTED_FIELDS)})"
            )
        values[name] = tuple(value) if name == "allowed_batch_sizes" else value.value
    try:
        return BatchingParameters(**values)
    except BatchingConfigError as e:
        raise BatchingConfigError(f"{source}: {e}") from None


def read_batching_parameters_file(path) -> BatchingParameters:
    path = pathlib.Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise BatchingConfigError(f"--batching_parameters_file {path}: {e}") from None
    return parse_batching_parameters(text, f"--batching_parameters_file {path}")
