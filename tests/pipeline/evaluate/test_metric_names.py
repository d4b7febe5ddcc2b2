"""Metric names that tell the truth: Keras's InceptionV3 is `keras_inception_v3` (not FID), the
FID network comes from the file its authors publish, and metrics.json says which is which.

The FID network is stood in for by a tiny frozen GraphDef with the published graph's interface
(classify_image_graph_def.pb: a JPEG decoder's uint8 [H, W, 3] -> Cast -> ExpandDims, float
0..255 [1, H, W, 3] -> ResizeBilinear to 299x299 -> Sub/Mul normalisation -> ... -> pool_3
[1, 1, 1, 2048] -> pool_3/_reshape [1, 2048])."""

import numpy as np
import pytest
import tensorflow as tf
from helpers import real_plus_noise_fn, small_config, write_ingest

from gan_keras.evaluation import feature_extractors
from pipeline.evaluate import generator_eval, scoring


def write_stand_in_fid_graph(path, seed=0, features=2048):
    rng = np.random.default_rng(seed)
    graph = tf.Graph()
    with graph.as_default():
        jpeg = tf.compat.v1.placeholder(tf.uint8, [None, None, 3], name="DecodeJpeg")
        x = tf.cast(jpeg, tf.float32, name="Cast")
        x = tf.expand_dims(x, 0, name="ExpandDims")
        x = tf.compat.v1.image.resize_bilinear(x, [299, 299], name="ResizeBilinear")
        x = tf.multiply(tf.subtract(x, 128.0, name="Sub"), 1.0 / 128.0, name="Mul")
        x = tf.nn.avg_pool2d(x, 13, 13, "VALID")  # 23x23: keeps the stand-in cheap
        w1 = tf.constant(rng.normal(0, 0.5, (3, 3, 3, 16)), tf.float32)
        x = tf.nn.relu(tf.nn.conv2d(x, w1, 2, "VALID"))  # 11x11
        w2 = tf.constant(rng.normal(0, 0.5, (1, 1, 16, features)), tf.float32)
        x = tf.nn.relu(tf.nn.conv2d(x, w2, 1, "VALID"))
        pool_3 = tf.nn.avg_pool2d(x, 11, 11, "VALID", name="pool_3")
        # The published graph's classifier head starts with a batch-1 reshape, never run here.
        tf.reshape(pool_3, [1, features], name="pool_3/_reshape")
    path.write_bytes(graph.as_graph_def().SerializeToString())
    return path


def ttur_features(graph_path, images):
    """pool_3 features one image at a time, fed as TTUR's fid.py feeds the graph."""
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(graph_path.read_bytes())
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="FID_Inception_Net")
    with tf.compat.v1.Session(graph=graph) as session:
        return np.concatenate(
            [
                session.run(
                    "FID_Inception_Net/pool_3:0",
                    {"FID_Inception_Net/ExpandDims:0": image[None].astype(np.float32)},
                ).reshape(1, -1)
                for image in images
            ]
        )


@pytest.fixture
def fid_graph(tmp_path):
    return write_stand_in_fid_graph(tmp_path / "classify_image_graph_def.pb")


def test_fid_network_features_match_ttur_feeding_the_published_tensors(fid_graph):
    extractor = feature_extractors.FidInceptionExtractor(str(fid_graph), batch_size=4)
    rgb = np.random.default_rng(1).integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
    features, probs = extractor.predict(rgb)
    assert features.shape == (6, 2048) and features.dtype == np.float64 and probs is None
    assert features.std() > 0
    np.testing.assert_allclose(features, ttur_features(fid_graph, rgb), rtol=1e-4, atol=1e-5)
    # Grayscale is replicated to RGB, as TTUR does.
    gray = rgb[..., :1]
    np.testing.assert_allclose(
        extractor.features(gray), extractor.features(np.repeat(gray, 3, axis=-1)), rtol=1e-6
    )
    info = extractor.info
    assert info["name"] == "fid_inception" and info["distance_name"] == "FID"
    assert info["input"] == "FID_Inception_Net/ExpandDims:0"
    assert info["output"] == "FID_Inception_Net/pool_3:0"
    assert info["fingerprint"] == feature_extractors.sha256_file(fid_graph)


def test_a_file_that_is_not_the_fid_graph_is_refused(tmp_path):
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="input")
        tf.identity(x, name="pool_3")
    other = tmp_path / "other.pb"
    other.write_bytes(graph.as_graph_def().SerializeToString())
    with pytest.raises(ValueError, match="has no ExpandDims:0: not the 2015-12-05 Inception"):
        feature_extractors.FidInceptionExtractor(str(other))
    garbage = tmp_path / "garbage.pb"
    garbage.write_bytes(b"\xff\x00 not a protobuf \xff" * 10)
    with pytest.raises(ValueError, match="not a frozen GraphDef"):
        feature_extractors.FidInceptionExtractor(str(garbage))
    with pytest.raises(FileNotFoundError, match="fid_inception_graph"):
        feature_extractors.FidInceptionExtractor(str(tmp_path / "absent.pb"))


def test_the_old_extractor_name_is_refused_saying_the_new_name_and_why(tmp_path):
    config = small_config()
    config.evaluate.extractor = "inception_v3"
    with pytest.raises(ValueError, match="now 'keras_inception_v3'.*never comparable with"):
        generator_eval.validate_config(config)
    config.evaluate.extractor = "fid_inception"
    with pytest.raises(ValueError, match="evaluate.fid_inception_graph.*no such file"):
        generator_eval.validate_config(config)
    config.evaluate.fid_inception_graph = str(tmp_path / "absent.pb")
    with pytest.raises(ValueError, match="evaluate.fid_inception_graph.*no such file"):
        generator_eval.validate_config(config)


@pytest.mark.slow
def test_metrics_say_which_distance_they_are(tmp_path, monkeypatch):
    # 64 features instead of 2048: the same path, without three 2048x2048 eigendecompositions.
    monkeypatch.setattr(feature_extractors, "FID_FEATURE_DIM", 64)
    fid_graph = write_stand_in_fid_graph(tmp_path / "classify_image_graph_def.pb", features=64)
    workdir = tmp_path / "work"
    train_x, train_y, _, _ = write_ingest(workdir, num_train=1500)  # 297 eval images
    config = small_config()
    config.evaluate.num_samples = 100
    config.evaluate.kid_subset_size = 50
    config.evaluate.classifier_min_steps = 50
    config.evaluate.max_real_examples = 300  # the floor's train images and the judge's
    config.evaluate.extractor = "fid_inception"
    config.evaluate.fid_inception_graph = str(fid_graph)
    generator_eval.validate_config(config)
    sample_fn = real_plus_noise_fn(train_x, train_y)
    fid = scoring.compute_metrics(config, workdir, sample_fn, conditional=False)
    assert fid["extractor"] == "fid_inception" and fid["distance_name"] == "FID"
    assert fid["summary"].startswith("FID ") and "fid_inception features" in fid["summary"]
    assert "2015-12-05 Inception graph" in fid["frechet_distance_description"]
    assert fid["extractor_fingerprint"] == feature_extractors.sha256_file(fid_graph)
    assert fid["frechet_distance"] < fid["references"]["noise_ceiling"]["frechet_distance"]

    config.evaluate.extractor = "domain_classifier"
    fd = scoring.compute_metrics(config, workdir, sample_fn, conditional=False)
    assert fd["distance_name"] == "FD" and fd["summary"].startswith("FD ")
    assert "not with published FID" in fd["frechet_distance_description"]
