"""Packaging for the GAN image-generation pipeline.

TensorFlow is chosen by extra (as tensorflow-datasets and Keras do) so a CPU
machine never pulls the CUDA build: ``pip install -e .[cpu]`` or ``.[gpu]``.
"""

import setuptools

TF_VERSION = "2.21.0"

setuptools.setup(
    name="gan-pipeline",
    version="0.1.0",
    description="A TFX-style GAN image-generation pipeline on TensorFlow/Keras.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=setuptools.find_packages(
        include=["pipeline", "pipeline.*", "gan_keras", "gan_keras.*", "configs"]
    ),
    # Reference scores (benchmarks.quality) that metrics.json places a model against, and the
    # model server's playground page (gan_keras.serving.playground serves that folder only).
    package_data={
        "gan_keras.evaluation": ["reference_scores.json"],
        "gan_keras.serving": ["static/playground/*"],
    },
    install_requires=[
        "keras==3.15.0",
        "apache-beam==2.77.0",
        "google-crc32c>=1.5",
        "tensorflow-datasets==4.9.10",
        "importlib_resources",
        "tensorboard==2.21.0",
        "absl-py>=2.1",
        "ml-collections==1.1.0",
        "pillow>=10",
        "numpy>=1.26",
        "scipy>=1.11",
        "scikit-learn>=1.4",
        "flask>=3.0",
        # The model server's REST front (gan_keras.serving.rest_server): one event loop
        # (uvloop, httptools' C parser) answers :predict; a2wsgi runs the Flask app's other
        # endpoints on worker threads. Measured against waitress in docs/serving.md#batching.
        "uvicorn>=0.30",
        "uvloop>=0.19",
        "httptools>=0.6",
        "a2wsgi>=1.10",
        # The model server's /monitoring/prometheus/metrics, and its :predict answers' JSON.
        "prometheus_client>=0.20",
        "orjson>=3.9",
    ],
    extras_require={
        "cpu": [f"tensorflow-cpu=={TF_VERSION}"],
        "gpu": [f"tensorflow[and-cuda]=={TF_VERSION}"],
        "test": [
            "pytest>=8",
            "pytest-timeout>=2.3",
            # scripts/test.sh runs the suite on two workers (one per core).
            "pytest-xdist>=3.5",
            # The coverage figure (docs/development.md); pyproject.toml's [tool.coverage] also
            # measures the CLIs the tests start as subprocesses.
            "pytest-cov>=7",
            "coverage>=7.10",
            "ruff>=0.6",
            "requests>=2.31",
            "matplotlib>=3.8",
            # tests/helpers.ServerThread: a threaded WSGI server for the object-store emulator.
            "waitress>=3.0",
            # A Cloud Storage emulator (pure Python), for the object-store tests.
            "gcp-storage-emulator>=2024.8",
            # Property-based fuzzing of the request codec and config validation.
            "hypothesis>=6.100",
            # gan_keras.provenance's tests: C2PA signing and a throwaway test CA.
            "c2pa-python>=0.38",
            "cryptography>=42",
            # The playground's tests in a real headless Chromium (Debian's chromium and
            # chromium-driver, which scripts/test.sh installs).
            "selenium>=4.20",
            # benchmarks/watermark_survival.py's dwt watermarks: what invisible-watermark really
            # uses (scripts/test.sh installs it with --no-deps: it declares torch and GUI OpenCV).
            "opencv-python-headless>=4.8",
            "PyWavelets>=1.4",
        ],
        # Signed C2PA content credentials on generated images (gan_keras.provenance);
        # without it images carry unsigned provenance metadata only.
        "provenance": ["c2pa-python>=0.38", "cryptography>=42"],
        # benchmarks.quality's plot.
        "bench": ["matplotlib>=3.8"],
        # The model server's gRPC API. Its protos and stubs, tensorflow-serving-api, cannot be
        # listed here: its wheel requires the full `tensorflow` wheel, which would be installed
        # beside tensorflow-cpu. Install it with `pip install --no-deps
        # tensorflow-serving-api==2.21.0` (scripts/test.sh does).
        "serving": ["grpcio>=1.60"],
        # gs:// workdirs and model base paths (gan_keras.storage.filesystem, through Beam's GCS
        # filesystem): the storage client, and google-auth-httplib2, without which Beam
        # connects anonymously instead of with the machine's credentials. Not apache-beam[gcp]:
        # its ~80 packages (BigQuery, Pub/Sub, Spanner, ...) serve no stage here; install it
        # for --runner=DataflowRunner.
        "gcs": ["google-cloud-storage>=2.14", "google-auth-httplib2>=0.2"],
    },
    entry_points={
        "console_scripts": [
            "gan-pipeline=pipeline.run:console_main",
            "gan-serve=gan_keras.serve:console_main",
            "gan-generate=pipeline.generate:console_main",
            "gan-verify=gan_keras.provenance.cli:console_main",
        ],
    },
)
