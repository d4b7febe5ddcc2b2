"""--model_config_file (gan_keras.serving.model_config, .models): several models, TF Serving's
version policies and labels over REST and gRPC, label rules, reloads (a bad file keeps the
running config), in-flight requests finishing on a removed version, and a version swap under
concurrent clients that loses no request."""

import concurrent.futures
import contextlib
import logging
import os
import shutil
import threading
import time

import grpc
import helpers
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from gan_keras.export import sampling_model as gan_export
from gan_keras.serving import app as serving_app
from gan_keras.serving import grpc_service, model_config
from gan_keras.serving.batching_parameters import BatchingParameters
from gan_keras.serving.codec import ServingError
from gan_keras.serving.model_config import ModelConfigError
from gan_keras.serving.models import ServedModels
from gan_keras.serving.versions import ModelVersions, VersionPolicy

LATENT = 8
CLASSES = 3
# Failure guards only: every wait ends as soon as what it waits for has happened.
GUARD_SECONDS = 120
Z = np.random.default_rng(0).standard_normal((2, LATENT)).astype(np.float32)


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    """gen: versions 1 and 3 (one generator) and 2 (another); cond: version 1."""
    root = tmp_path_factory.mktemp("model_config")
    for seed in (0, 1):
        generator = helpers.tiny_generator(False, seed, latent_dim=LATENT, channels=1)
        gan_export.export_generator(generator, root / f"gen{seed}", latent_dim=LATENT)
    (root / "gen").mkdir()
    shutil.copytree(root / "gen0" / "1", root / "gen" / "1")
    shutil.copytree(root / "gen1" / "1", root / "gen" / "2")
    shutil.copytree(root / "gen0" / "1", root / "gen" / "3")
    generator = helpers.tiny_generator(True, 0, latent_dim=LATENT, num_classes=CLASSES)
    gan_export.export_generator(generator, root / "cond", latent_dim=LATENT, num_classes=CLASSES)
    return root


def config_text(*models) -> str:
    """models: (name, base_path, policy text or '', {label: version})."""
    entries = []
    for name, base, policy, labels in models:
        lines = [f'name: "{name}"', f'base_path: "{base}"', 'model_platform: "tensorflow"']
        if policy:
            lines.append(f"model_version_policy {{ {policy} }}")
        lines += [f'version_labels {{ key: "{k}" value: {v} }}' for k, v in labels.items()]
        entries.append("config { " + " ".join(lines) + " }")
    return "model_config_list {\n" + "\n".join(entries) + "\n}\n"


class Server:
    """ServedModels from a config file, over REST (test client) and gRPC (loopback)."""

    def __init__(self, path, batching=None, **options):
        self.path = path
        models = ServedModels.from_config_file(path, file_system_poll_seconds=0, **options)
        self.models = models
        self.app = serving_app.create_app(registry=models, batching=batching)
        self.rest = self.app.test_client()
        self.server, port = grpc_service.start_server(
            models,
            self.app.config["METRICS"],
            host="127.0.0.1",
            port=0,
            max_batch=64,
            max_workers=16,
            run_predict=self.app.config["RUN_PREDICT"],
        )
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.predictions = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.model_service = model_service_pb2_grpc.ModelServiceStub(self.channel)

    def close(self):
        self.channel.close()
        self.server.stop(grace=None).wait()
        if self.app.config["BATCHER"] is not None:
            self.app.config["BATCHER"].stop()
        self.models.stop()

    def status(self, path):
        r = self.rest.get(f"/v1/models/{path}")
        body = r.get_json()
        if r.status_code != 200:
            return r.status_code, body["error"]
        return 200, [(s["version"], s["state"]) for s in body["model_version_status"]]

    def predict(self, path, z=Z):
        r = self.rest.post(f"/v1/models/{path}:predict", json={"instances": z.tolist()})
        body = r.get_json()
        return r.status_code, (body.get("predictions") if r.status_code == 200 else body["error"])

    def metadata_version(self, path):
        r = self.rest.get(f"/v1/models/{path}/metadata")
        assert r.status_code == 200, r.get_json()
        return r.get_json()["model_spec"]["version"]

    def grpc_predict(self, name, version=None, label=None, z=Z):
        request = predict_pb2.PredictRequest()
        request.model_spec.name = name
        if version is not None:
            request.model_spec.version.value = version
        if label is not None:
            request.model_spec.version_label = label
        request.inputs["z"].CopyFrom(tf.make_tensor_proto(z))
        response = self.predictions.Predict(request, timeout=GUARD_SECONDS)
        return response.model_spec.version.value, tf.make_ndarray(response.outputs["images"])

    def grpc_status(self, name, version=None, label=None):
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = name
        if version is not None:
            request.model_spec.version.value = version
        if label is not None:
            request.model_spec.version_label = label
        response = self.model_service.GetModelStatus(request, timeout=GUARD_SECONDS)
        return [s.version for s in response.model_version_status]


@pytest.fixture
def serve(tmp_path):
    made = []

    def start(text, **options):
        path = tmp_path / "models.config"
        path.write_text(text)
        made.append(Server(path, **options))
        return made[-1]

    yield start
    for server in made:
        server.close()


# ----------------------------------------------------------------------------
# Parsing
# ----------------------------------------------------------------------------


def test_parses_tf_servings_model_server_config():
    specs = model_config.parse_model_config(
        config_text(
            ("a", "/m/a", "", {}),
            ("b", "/m/b", "latest { num_versions: 2 }", {"stable": 1}),
            ("c", "/m/c", "specific { versions: 3 versions: 1 }", {}),
            ("d", "gs://bucket/d", "all {}", {"canary": 4, "stable": 2}),
            ("e", "/m/e", "latest {}", {}),
        )
    )
    assert [(s.name, s.base_path) for s in specs] == [
        ("a", "/m/a"),
        ("b", "/m/b"),
        ("c", "/m/c"),
        ("d", "gs://bucket/d"),
        ("e", "/m/e"),
    ]
    assert [s.policy for s in specs] == [
        VersionPolicy(),
        VersionPolicy("latest", 2),
        VersionPolicy("specific", versions=frozenset({1, 3})),
        VersionPolicy("all"),
        VersionPolicy("latest", 1),  # num_versions 0 serves one, as in TF Serving
    ]
    assert specs[3].label_map == {"canary": 4, "stable": 2}


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("model_config_list { config { name: 'a' base_path: '/x' colour: 1 } }", "colour"),
        ("model_config_list { config { name: 'a' base_path: '/x' }", "Expected"),
        ("", "no model_config_list"),
        ("model_config_list { config { base_path: '/x' } }", "name is empty"),
        ("model_config_list { config { name: 'a' } }", "base_path is empty"),
        (
            "model_config_list { config { name: 'a' base_path: '/x' } "
            "config { name: 'a' base_path: '/y' } }",
            "appears twice",
        ),
        (
            "model_config_list { config { name: 'a' base_path: '/x' model_platform: 'pytorch' } }",
            "model_platform",
        ),
        (
            "model_config_list { config { name: 'a' base_path: '/x' "
            "model_version_policy { specific { } } } }",
            "lists no versions",
        ),
        (
            "model_config_list { config { name: 'a' base_path: '/x' "
            "version_labels { key: 'a/b' value: 1 } } }",
            "version label",
        ),
        (
            "model_config_list { config { name: 'a' base_path: '/x' logging_config { } } }",
            "logging_config is not supported",
        ),
        ("model_config_list { config { name: 'a' base_path: 'gs:/x' } }", "gs:"),
        ("custom_model_config { }", "custom_model_config is not supported"),
    ],
)
def test_bad_files_are_refused_naming_the_problem(text, fragment):
    with pytest.raises(ModelConfigError, match=fragment):
        model_config.parse_model_config(text)


# ----------------------------------------------------------------------------
# Several models, version policies, labels
# ----------------------------------------------------------------------------


def test_several_models_and_every_version_policy(bases, serve):
    gen = bases / "gen"
    server = serve(
        config_text(
            ("default", gen, "", {}),
            ("latest2", gen, "latest { num_versions: 2 }", {}),
            ("specific", gen, "specific { versions: 1 versions: 3 versions: 7 }", {}),
            ("all", gen, "all {}", {}),
            ("cond", bases / "cond", "", {}),
        )
    )
    served = {"default": [3], "latest2": [3, 2], "specific": [3, 1], "all": [3, 2, 1], "cond": [1]}
    for name, versions in served.items():
        assert server.status(name) == (200, [(str(v), "AVAILABLE") for v in versions]), name
        assert server.grpc_status(name) == versions, name
        assert server.metadata_version(name) == str(max(versions))
        for v in (1, 2, 3):
            if name == "cond":
                continue
            code, _ = server.predict(f"{name}/versions/{v}")
            assert code == (200 if v in versions else 404), (name, v)
            if v in versions:
                assert server.metadata_version(f"{name}/versions/{v}") == str(v)
                assert server.grpc_predict(name, version=v)[0] == v
                assert server.status(f"{name}/versions/{v}") == (200, [(str(v), "AVAILABLE")])
            else:
                with pytest.raises(grpc.RpcError) as e:
                    server.grpc_predict(name, version=v)
                assert e.value.code() == grpc.StatusCode.NOT_FOUND
                assert "Specific" in e.value.details()
    # Versions 1 and 3 are one generator, 2 another: the right one answers.
    all_ = {v: server.predict(f"all/versions/{v}")[1] for v in (1, 2, 3)}
    assert all_[1] == all_[3] != all_[2]
    r = server.rest.post(
        "/v1/models/cond:predict", json={"instances": [{"z": Z[0].tolist(), "label": 1}]}
    )
    assert r.status_code == 200
    code, error = server.predict("nothing")
    assert code == 404 and error == "Servable not found for request: Latest(nothing)"


def test_labels_over_rest_and_grpc(bases, serve):
    gen = bases / "gen"
    server = serve(
        config_text(
            ("gen", gen, "specific { versions: 1 versions: 2 }", {"stable": 1, "canary": 2})
        )
    )
    assert server.metadata_version("gen/labels/stable") == "1"
    assert server.metadata_version("gen/labels/canary") == "2"
    assert server.status("gen/labels/canary") == (200, [("2", "AVAILABLE")])
    assert server.predict("gen/labels/canary") == server.predict("gen/versions/2")
    assert server.predict("gen/labels/stable") == server.predict("gen/versions/1")
    assert server.predict("gen/labels/stable") != server.predict("gen/labels/canary")
    assert server.grpc_predict("gen", label="stable")[0] == 1
    assert server.grpc_predict("gen", label="canary")[0] == 2
    assert server.grpc_status("gen", label="canary") == [2]
    # An unknown label: TF Serving's INVALID_ARGUMENT.
    code, error = server.predict("gen/labels/beta")
    assert code == 400 and error == "Unrecognized servable version label: beta"
    with pytest.raises(grpc.RpcError) as e:
        server.grpc_predict("gen", label="beta")
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_label_must_point_at_a_loaded_version(bases, serve, caplog):
    gen = bases / "gen"
    with pytest.raises(ModelConfigError, match="not currently available"):
        serve(config_text(("gen", gen, "specific { versions: 1 }", {"stable": 2})))

    server = serve(config_text(("gen", gen, "specific { versions: 1 versions: 2 }", {"stable": 1})))
    path = server.path
    # Moving a label to a loaded version: accepted.
    path.write_text(
        config_text(("gen", gen, "specific { versions: 1 versions: 2 }", {"stable": 2}))
    )
    assert server.models.reload_config()
    assert server.metadata_version("gen/labels/stable") == "2"
    # Loading version 3 and labelling it in one change: refused whole, as TF Serving does.
    path.write_text(
        config_text(
            ("gen", gen, "specific { versions: 1 versions: 2 versions: 3 }", {"stable": 2, "b": 3})
        )
    )
    with caplog.at_level(logging.ERROR):
        assert not server.models.reload_config()
    assert "ModelConfigError" in caplog.text and "version 3 of model gen" in caplog.text
    assert server.status("gen") == (200, [("2", "AVAILABLE"), ("1", "AVAILABLE")])
    assert server.predict("gen/labels/b")[0] == 400
    # In two steps it works: load, then label.
    path.write_text(
        config_text(("gen", gen, "specific { versions: 1 versions: 2 versions: 3 }", {"stable": 2}))
    )
    assert server.models.reload_config()
    assert server.status("gen")[1][0] == ("3", "AVAILABLE")
    path.write_text(
        config_text(
            ("gen", gen, "specific { versions: 1 versions: 2 versions: 3 }", {"stable": 2, "b": 3})
        )
    )
    assert server.models.reload_config()
    assert server.metadata_version("gen/labels/b") == "3"


def test_allow_version_labels_for_unavailable_models(bases, serve):
    gen = bases / "gen"
    text = config_text(("gen", gen, "specific { versions: 1 }", {"stable": 1, "next": 2}))
    server = serve(text, allow_labels_for_unavailable=True)
    assert server.metadata_version("gen/labels/stable") == "1"
    # A new label may point at a version that is not loaded: requests for it are not found.
    code, error = server.predict("gen/labels/next")
    assert code == 404 and error == "Servable not found for request: Specific(gen, 2)"
    # Moving an existing label there is still refused.
    server.path.write_text(
        config_text(("gen", gen, "specific { versions: 1 }", {"stable": 3, "next": 2}))
    )
    assert not server.models.reload_config()
    assert server.metadata_version("gen/labels/stable") == "1"


# ----------------------------------------------------------------------------
# Reloading
# ----------------------------------------------------------------------------


def test_a_bad_file_keeps_the_running_config(bases, serve, caplog):
    gen = bases / "gen"
    server = serve(config_text(("gen", gen, "", {"stable": 3})))
    before = server.status("gen")
    bad_files = [
        "model_config_list { config { name: 'gen' ",  # cut short
        config_text(("gen", gen, "", {}), ("gen", bases / "cond", "", {})),  # a name twice
        config_text(("gen", gen, "specific { }", {})),
    ]
    for text in bad_files:
        caplog.clear()
        server.path.write_text(text)
        with caplog.at_level(logging.ERROR):
            assert not server.models.reload_config()
        assert "ModelConfigError" in caplog.text
        assert server.status("gen") == before
        assert server.metadata_version("gen/labels/stable") == "3"
        assert server.predict("gen")[0] == 200
    server.path.unlink()
    assert not server.models.reload_config()
    assert server.status("gen") == before
    # The poller applies a good file: a second model appears.
    server.models.config_poll_seconds = 0.05
    server.models.start()
    server.path.write_text(
        config_text(("gen", gen, "", {"stable": 3}), ("cond", bases / "cond", "", {}))
    )
    deadline = time.monotonic() + GUARD_SECONDS
    while "cond" not in server.models.names():
        assert time.monotonic() < deadline, "the poller never applied the new file"
        time.sleep(0.02)
    assert server.status("cond") == (200, [("1", "AVAILABLE")])


def test_a_label_moved_off_a_version_the_same_file_drops_never_points_at_nothing(
    bases, serve, monkeypatch
):
    """One rewrite moves `stable` 1 -> 2 and drops version 1 (a push's usual last step).
    Requests for `stable` must get 1 or 2 throughout; the server used to unload 1 before it
    moved the label, so for the length of the unload they got 404 (benchmarks/
    serve_version_churn.py found it: 10 of 5,490 requests in 15 s of pushes)."""
    gen = bases / "gen"
    labels = {"stable": 1, "canary": 2}
    server = serve(config_text(("gen", gen, "specific { versions: 1 versions: 2 }", labels)))
    versions = server.models.model("gen")
    refresh, answers = versions.refresh, []

    def refresh_then_ask():
        served = refresh()  # version 1 just left the served set
        answers.append((server.predict("gen/labels/stable")[0], server.status("gen/labels/stable")))
        return served

    monkeypatch.setattr(versions, "refresh", refresh_then_ask)
    server.path.write_text(
        config_text(("gen", gen, "specific { versions: 2 }", {"stable": 2, "canary": 2}))
    )
    assert server.models.reload_config()
    assert answers == [(200, (200, [("2", "AVAILABLE")]))]
    assert server.status("gen") == (200, [("2", "AVAILABLE")])


def test_a_request_that_read_a_label_keeps_its_version_while_the_label_moves(bases, serve):
    """The label is read and its version taken (leased) as one step: a config change that
    moves the label and drops the version in between cannot leave the request with a version
    that is gone (a 404). It holds the old version, which unloads when it ends."""
    gen = bases / "gen"
    labels = {"stable": 1, "canary": 2}
    server = serve(config_text(("gen", gen, "specific { versions: 1 versions: 2 }", labels)))
    models, versions = server.models, server.models.model("gen")
    lease, paused, resume = versions.lease, threading.Event(), threading.Event()

    @contextlib.contextmanager
    def paused_lease(version=None):
        if not paused.is_set():  # the first request: stop between the label and the lease
            paused.set()
            assert resume.wait(GUARD_SECONDS)
        with lease(version) as servable:
            yield servable

    versions.lease = paused_lease
    with concurrent.futures.ThreadPoolExecutor(2) as pool:

        def request():
            with models.lease("gen", label="stable") as servable:
                return servable.version, servable.run("serving_default", {"z": Z})["images"]

        answer = pool.submit(request)
        assert paused.wait(GUARD_SECONDS)
        server.path.write_text(
            config_text(("gen", gen, "specific { versions: 2 }", {"stable": 2, "canary": 2}))
        )
        applied = pool.submit(models.reload_config)
        # The change waits for the request to take its version (it cannot finish first).
        with contextlib.suppress(concurrent.futures.TimeoutError):
            applied.result(timeout=1.0)
        resume.set()
        version, images = answer.result(GUARD_SECONDS)
        assert applied.result(GUARD_SECONDS)
    assert version == 1 and images.shape == (2, 8, 8, 1)
    assert server.metadata_version("gen/labels/stable") == "2"
    assert server.status("gen") == (200, [("2", "AVAILABLE")])  # 1 unloaded once it ended


def test_removed_models_and_versions_finish_requests_in_flight(bases, serve):
    gen = bases / "gen"
    server = serve(
        config_text(
            ("gen", gen, "specific { versions: 1 versions: 2 }", {}),
            ("cond", bases / "cond", "", {}),
        )
    )
    models = server.models
    with models.lease("gen", 1) as v1, models.lease("cond") as cond:
        server.path.write_text(config_text(("gen", gen, "specific { versions: 2 }", {})))
        assert models.reload_config()
        # No new requests for them...
        assert server.predict("gen/versions/1")[0] == 404
        assert server.predict("cond")[0] == 404
        assert server.status("gen") == (200, [("2", "AVAILABLE"), ("1", "UNLOADING")])
        # ...but the ones holding them still run.
        assert v1.run("serving_default", {"z": Z})["images"].shape == (2, 8, 8, 1)
        labels = np.int32([0, 1])
        assert cond.run("serving_default", {"z": Z, "label": labels})["images"].shape[0] == 2
    # Unloaded once the last request ended.
    assert v1.signatures == {} and cond.signatures == {}
    assert server.status("gen") == (200, [("2", "AVAILABLE")])
    with pytest.raises(ServingError):
        models.resolve("cond")


def test_a_version_swap_under_concurrent_clients_loses_no_request(bases, tmp_path):
    """8 gRPC clients, batching on, while new versions arrive and take over: every request
    is answered, by a version that was served, with that version's images."""
    base = tmp_path / "swap"
    base.mkdir()
    content = {v: bases / ("gen0" if v % 2 else "gen1") / "1" for v in range(1, 5)}
    shutil.copytree(content[1], base / "1")
    versions = ModelVersions(base, "gen", poll_seconds=0)
    versions.refresh()
    app = serving_app.create_app(
        registry=versions, batching=BatchingParameters(max_batch_size=16, num_batch_threads=1)
    )
    # Odd versions are one generator, even ones another: v1's images now, v4's at the end.
    reference = {1: versions.current().run("serving_default", {"z": Z})["images"]}
    server, port = grpc_service.start_server(
        app.config["REGISTRY"],
        app.config["METRICS"],
        host="127.0.0.1",
        port=0,
        max_batch=64,
        max_workers=16,
        run_predict=app.config["RUN_PREDICT"],
    )
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    stop = threading.Event()
    results, errors = [], []

    def client():
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "gen"
        request.inputs["z"].CopyFrom(tf.make_tensor_proto(Z))
        while not stop.is_set():
            try:
                response = stub.Predict(request, timeout=GUARD_SECONDS)
                images = tf.make_ndarray(response.outputs["images"])
                results.append((response.model_spec.version.value, images))
            except grpc.RpcError as e:
                errors.append(f"{e.code()}: {e.details()}")

    try:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            clients = [pool.submit(client) for _ in range(8)]
            for version in (2, 3, 4):
                # Wait for traffic on the version being replaced, then push the next one.
                deadline = time.monotonic() + GUARD_SECONDS
                while not any(v == version - 1 for v, _ in results[-8:]):
                    assert time.monotonic() < deadline and not errors, errors[:3]
                    time.sleep(0.01)
                staging = tmp_path / f"staging{version}"
                shutil.copytree(content[version], staging)
                os.rename(staging, base / str(version))  # a version appears whole
                versions.refresh()
                assert versions.current().version == version
            deadline = time.monotonic() + GUARD_SECONDS
            while not any(v == 4 for v, _ in results[-8:]):
                assert time.monotonic() < deadline and not errors, errors[:3]
                time.sleep(0.01)
            stop.set()
            for c in clients:
                c.result(GUARD_SECONDS)
        assert errors == []
        served = {v for v, _ in results}
        assert served == {1, 2, 3, 4}
        # Every answer holds the images of the version it names (+-1: merged calls round).
        with versions.lease() as v4:
            assert v4.version == 4
            reference[0] = v4.run("serving_default", {"z": Z})["images"]
        for v, images in results:
            want = reference[v % 2]
            assert np.abs(images.astype(int) - want.astype(int)).max() <= 1, v
        # The replaced versions are unloaded: only 4 is left.
        assert versions.status() == [
            {
                "version": "4",
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    finally:
        stop.set()
        channel.close()
        server.stop(grace=None).wait()
        app.config["BATCHER"].stop()
        app.config["REGISTRY"].stop()
