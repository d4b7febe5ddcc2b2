r"""Serves exported generators over TensorFlow Serving's REST API.

    python -m gan_keras.serve --model_base_path=<workdir>/export/generator \
        --model_name=generator --port=8501          # or: gan-serve ...

Serves the highest integer version under ``--model_base_path`` and picks up
new versions every ``--poll_seconds`` without a restart. The endpoints, the
request formats and the version policy are described in gan_keras.serving.
"""

import logging

from absl import app, flags

from gan_keras.serving import app as serving_app

_MODEL_BASE_PATH = flags.DEFINE_string(
    "model_base_path", None, "Directory holding integer version subdirectories (SavedModels)."
)
_MODEL_NAME = flags.DEFINE_string("model_name", "generator", "Name in the /v1/models/<name> URLs.")
_HOST = flags.DEFINE_string("host", "127.0.0.1", "Interface to listen on (0.0.0.0 for all).")
_PORT = flags.DEFINE_integer("port", 8501, "HTTP port (TF Serving's REST default).")
_MAX_BATCH = flags.DEFINE_integer(
    "max_batch", 256, "Largest batch / num_samples one request may ask for."
)
_POLL_SECONDS = flags.DEFINE_float(
    "poll_seconds", 2.0, "How often to look for new versions (0: never)."
)
_THREADS = flags.DEFINE_integer("threads", 4, "Request worker threads.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not _MODEL_BASE_PATH.value:
        raise app.UsageError("--model_base_path is required")
    logging.getLogger().setLevel(logging.INFO)
    serving_app.run_server(
        _MODEL_BASE_PATH.value,
        _MODEL_NAME.value,
        host=_HOST.value,
        port=_PORT.value,
        max_batch=_MAX_BATCH.value,
        poll_seconds=_POLL_SECONDS.value,
        threads=_THREADS.value,
    )


def console_main():
    app.run(main)


if __name__ == "__main__":
    console_main()
