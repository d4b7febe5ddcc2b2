"""The quality benchmark's bookkeeping: budgets, comparisons at equal images, targets."""

import math
import re
import sys

import numpy as np
import pytest

from benchmarks import quality, quality_report, quality_rows
from configs import fashion_mnist, noto_emoji, stylegan2_fashion_mnist
from gan_keras.evaluation import feature_extractors, feature_scores
from pipeline import judge as pipeline_judge


def _run(points, rate=1000.0):
    return {
        "snapshots": [
            {"seconds": s, "images": i, "fd": fd, "fd_raw": raw} for s, i, fd, raw in points
        ],
        "images_per_second": rate,
    }


REFERENCES = {
    "judge_fingerprint": "f",
    "judge_test_accuracy": 0.91,
    "real_eval_images": 10_000,
    "real_floor_images": 5000,
    "real_floor": 0.2,
    "noise_ceiling": 100.0,
    "real_floor_scores": {"fd": 0.2, "kid": 1e-5, "kid_std": 0.0, "precision": 0.8, "recall": 0.8},
}


@pytest.fixture(autouse=True)
def _flags():
    from absl import flags

    flags.FLAGS(["quality"], known_only=True)


def test_targets_compare_with_the_reference_at_its_images_budget():
    results = {
        # The reference reaches FD 8 at 300k images, after 900 s.
        "article_dcgan": [_run([(300, 90_000, 20.0, 20.0), (900, 300_000, 8.0, 8.0)], rate=330)]
        * 2,
        # A default that has FD 6 at 300 s and 3.5 at 300k images, EMA better than raw.
        "default": [
            _run([(150, 150_000, 12.0, 13.0), (280, 300_000, 3.5, 4.0), (300, 320_000, 3.4, 3.9)])
        ],
    }
    table, summary = quality_report.summarize(
        results, REFERENCES, seconds=300, images=300_000, num_samples=5000
    )
    assert summary["reference_fd_at_images"] == 8.0
    targets = {t["target"].split(" (")[0]: t for t in summary["targets"]}
    assert all(t["met"] for t in summary["targets"]), summary["targets"]
    assert summary["rows"]["default"]["fd_at_seconds"][0] == 3.4
    assert summary["rows"]["default"]["fd_at_images"][0] == 3.5
    assert len(targets) == 3
    assert "| default | 1 |" in table and "MET" in table


def test_a_default_worse_than_half_the_reference_at_equal_images_misses_the_target():
    results = {
        "article_dcgan": [_run([(900, 300_000, 8.0, 8.0)], rate=330)],
        "default": [_run([(300, 300_000, 5.0, 4.0)])],
    }
    _, summary = quality_report.summarize(
        results, REFERENCES, seconds=300, images=300_000, num_samples=5000
    )
    met = [t["met"] for t in summary["targets"]]
    # 5.0 <= 8.0 (time target) but 5.0 > 0.5 x 8.0, and the export (5.0) is worse than raw G (4.0).
    assert met == [True, False, False]


def test_snapshot_lookups():
    snaps = _run([(30, 10_000, 50.0, 50.0), (60, 20_000, 30.0, 31.0), (95, 30_000, 20.0, 22.0)])[
        "snapshots"
    ]
    assert quality_report.at_seconds(snaps, 60)["fd"] == 30.0
    assert quality_report.at_seconds(snaps, 90)["fd"] == 30.0  # the last snapshot within the budget
    assert quality_report.at_images(snaps, 30_000)["fd"] == 20.0
    assert (
        quality_report.at_images(snaps, 25_000)["fd"] == 20.0
    )  # reached within the batch that crossed it
    assert quality_report.at_images(snaps, 40_000) is None
    assert quality_report.seconds_to_reach(snaps, 30.0) == 60
    assert quality_report.seconds_to_reach(snaps, 1.0) is None


def test_candidate_rows_are_config_overrides():
    row = quality_rows.parse_candidate(
        "wide:model.g_width=64,train.g_learning_rate=4e-4,model.spectral_norm=True"
    )
    assert row.overrides == {
        "model.g_width": 64,
        "train.g_learning_rate": 4e-4,
        "model.spectral_norm": True,
    }
    base = quality.base_config(fashion_mnist.get_config(), idx_data_dir="/data")
    config = quality.row_config(row, seed=2, base=base)
    assert (
        config.model.g_width == 64 and config.train.seed == 2 and config.data.source == "idx:/data"
    )
    assert base.model.g_width == 32  # the base config is left as it was
    with pytest.raises(ValueError, match="name:field=value"):
        quality_rows.parse_candidate("no-overrides")
    with pytest.raises(ValueError, match="model.nope"):
        quality.row_config(quality_rows.parse_candidate("x:model.nope=1"), seed=0, base=base)


def _scored_run(points, rate=1000.0):
    """A run whose snapshots carry KID and precision/recall, as runs record them now."""
    run = _run([(s, i, fd, fd) for s, i, fd, _, _, _ in points], rate)
    for snapshot, (_, _, _, kid, precision, recall) in zip(run["snapshots"], points, strict=True):
        snapshot.update(kid=kid, kid_std=0.0, precision=precision, recall=recall)
    return run


def test_scores_table_shows_kid_precision_recall_and_a_dash_for_older_cached_runs():
    results = {
        # Cached before KID and precision/recall were recorded: FD only.
        "article_dcgan": [_run([(100, 30_000, 20.0, 20.0), (200, 60_000, 9.0, 9.0)])],
        "default": [
            _scored_run([(50, 30_000, 10.0, 0.010, 0.6, 0.3), (90, 60_000, 5.0, 0.004, 0.7, 0.5)]),
            _scored_run([(50, 30_000, 12.0, 0.012, 0.5, 0.2), (95, 60_000, 7.0, 0.006, 0.8, 0.4)]),
        ],
        # One seed rerun with the new scores, one still from the old cache.
        "mixed": [
            _scored_run([(60, 60_000, 6.0, 0.005, 0.7, 0.45)]),
            _run([(60, 60_000, 8.0, 8.0)]),
        ],
    }
    table, summary = quality_report.summarize(
        results, REFERENCES, seconds=300, images=60_000, num_samples=5000
    )
    scores_table = table[table.index("| row | seeds | final") :]
    reference_line = next(line for line in scores_table.splitlines() if "article_dcgan" in line)
    assert reference_line.count("–") == 6  # KID, precision, recall, final and at 60k
    assert "| 9.00 |" in reference_line  # its FD is still shown
    default_line = next(line for line in scores_table.splitlines() if "| default |" in line)
    # Final snapshot: FD 6 ± 1.41, KID 0.005 ± 0.00141, precision 0.75, recall 0.45.
    assert "6.00 ± 1.41 | 0.005 ± 0.00141 | 0.750 ± 0.071 | 0.450 ± 0.071" in default_line
    mixed_line = next(line for line in scores_table.splitlines() if "| mixed |" in line)
    assert "7.00 ± 1.41 | 0.005 (1/2 seeds)" in mixed_line
    default_scores = summary["rows"]["default"]["scores"]
    assert default_scores["final"]["recall"][0] == pytest.approx(0.45)
    assert default_scores["at_images"]["kid"][0] == pytest.approx(0.005)
    assert summary["rows"]["article_dcgan"]["scores"]["final"]["fd"][0] == 9.0
    assert math.isnan(summary["rows"]["article_dcgan"]["scores"]["final"]["kid"][0])
    assert "vs the 10,000 real eval images" in table and "precision 0.800" in table


def test_config_flag_selects_the_data_and_the_default_row_is_that_config(tmp_path):
    from absl import flags

    saved = flags.FLAGS["config"].serialize()
    try:
        flags.FLAGS(["quality", "--config=configs/noto_emoji.py"], known_only=True)
        assert quality.config_path() == "configs/noto_emoji.py"
        base = quality.base_config(quality._CONFIG.value, quality._DATA.value)
    finally:
        flags.FLAGS([sys.argv[0], saved], known_only=True)
    assert quality.config_path() == "configs/fashion_mnist.py"
    assert base.data.source.startswith("folder:") and base.data.source.endswith("noto-emoji")
    assert (base.data.resolution, base.data.channels) == (32, 3)
    default_row = quality_rows.known_rows([], "configs/noto_emoji.py")["default"]
    assert default_row.description == "configs/noto_emoji.py as it is"
    assert quality.row_config(default_row, seed=0, base=base).to_dict() == base.to_dict()
    assert quality.row_config(default_row, seed=0, base=base).to_dict() == (
        noto_emoji.get_config().to_dict()
    )
    # --data replaces an idx: directory, and nothing else.
    with pytest.raises(ValueError, match="replaces an idx: source"):
        quality.base_config(noto_emoji.get_config(), idx_data_dir="/data")
    conditional = fashion_mnist.get_config()
    conditional.model.conditional = True
    with pytest.raises(ValueError, match="unconditional"):
        quality.base_config(conditional)


def test_other_datasets_get_their_own_cache_keys_and_data_workdir_fashion_mnist_keeps_its_own(
    tmp_path, monkeypatch
):
    fashion = quality.base_config(fashion_mnist.get_config())
    emoji = quality.base_config(noto_emoji.get_config())
    # Fashion-MNIST, also read through another config of the same data and judge, keeps the
    # `data/` workdir and the cache keys of every earlier run.
    assert quality.dataset_id(fashion) is None
    assert quality.dataset_id(quality.base_config(stylegan2_fashion_mnist.get_config())) is None
    emoji_id = quality.dataset_id(emoji)
    assert emoji_id is not None
    judged_longer = noto_emoji.get_config()
    judged_longer.evaluate.classifier_min_steps *= 2
    assert quality.dataset_id(judged_longer) not in (None, emoji_id)
    # The emoji config names its folder by an absolute path: another clone gets the same keys.
    elsewhere = quality.base_config(noto_emoji.get_config())
    elsewhere.data.source = elsewhere.data.source.replace(quality._REPO_ROOT, "/elsewhere/clone")
    monkeypatch.setattr(quality, "_REPO_ROOT", "/elsewhere/clone")
    assert quality.dataset_id(elsewhere) == emoji_id
    default_row = quality_rows.known_rows([])["default"]
    key_elsewhere = quality._cache_key(default_row, 0, elsewhere)
    monkeypatch.undo()
    assert key_elsewhere == quality._cache_key(default_row, 0, emoji)
    reference = quality_rows.known_rows([])["article_dcgan"]
    # The key the reference's seed 0 has had since before --config (default budgets).
    assert quality._cache_key(reference, 0, fashion) == "2008cf063af3bf98"
    assert quality._cache_key(reference, 0, emoji) != quality._cache_key(reference, 0, fashion)
    default = quality_rows.known_rows([])["default"]
    assert quality._cache_key(default, 0, emoji) != quality._cache_key(default, 0, fashion)

    ingested = []

    class FakeRunner:
        def __init__(self, config, workdir):
            ingested.append((config.data.source, workdir))

        def run(self, stages):
            assert stages == ["ingest"]

    monkeypatch.setattr(quality.runner, "Runner", FakeRunner)
    assert quality.prepare_data(tmp_path, fashion) == tmp_path / "data"
    assert quality.prepare_data(tmp_path, emoji) == tmp_path / f"data-{emoji_id}"
    assert ingested[1][0] == emoji.data.source


def test_article_dcgan_takes_the_datas_size_and_channels():
    from benchmarks import article_dcgan

    # Fashion-MNIST: the article's network, padded 28 -> 32, cropped back.
    fashion = article_dcgan.ArticleDCGAN(np.zeros((64, 28, 28, 1), np.uint8), seed=0)
    kernels = [tuple(w.shape) for w in fashion.generator.weights if "kernel" in w.path]
    assert kernels == [(4, 4, 256, 100), (4, 4, 128, 256), (4, 4, 64, 128), (4, 4, 1, 64)]
    assert fashion.discriminator.input_shape == (None, 32, 32, 1)
    assert fashion.samples(3, seed=0).shape == (3, 28, 28, 1)
    # Colour emoji: 32x32x3 as they are, one image per sample.
    emoji = article_dcgan.ArticleDCGAN(np.zeros((64, 32, 32, 3), np.uint8), seed=0)
    emoji.train(1)
    samples = emoji.samples(3, seed=0)
    assert samples.shape == (3, 32, 32, 3) and samples.dtype == np.uint8
    assert emoji.discriminator.input_shape == (None, 32, 32, 3)
    # Larger data gets a layer per doubling: at 64x64 the PyTorch tutorial's widths.
    assert article_dcgan.network_size(64) == 64
    assert article_dcgan._widths(64) == [64, 128, 256, 512]


class _FlatPixels(feature_extractors.FeatureExtractor):
    """Features = the flattened pixels: enough to check what the scorer does with them."""

    def predict(self, images):
        return np.asarray(images, np.float64).reshape(len(images), -1), None


def test_judge_scorer_precision_recall_are_the_metrics_of_its_features():
    config = fashion_mnist.get_config()
    config.evaluate.kid_subset_size = 50
    rng = np.random.default_rng(0)
    real = rng.integers(0, 256, (120, 4, 4, 1), dtype=np.uint8)
    fake = rng.integers(0, 128, (100, 4, 4, 1), dtype=np.uint8)  # half the range: low recall
    scorer = pipeline_judge.JudgeScorer(config, _FlatPixels(), real)
    scores = scorer.score(fake, with_precision_recall=True)
    expected = feature_scores.precision_recall(
        real.reshape(120, -1).astype(np.float64),
        fake.reshape(100, -1).astype(np.float64),
        k=config.evaluate.pr_k,
    )
    assert (scores["precision"], scores["recall"]) == pytest.approx(expected)
    assert scores["recall"] < 0.5
    assert "precision" not in scorer.score(fake)  # FD and KID only, as in-training evaluation


def test_kid_reads_on_judges_of_any_feature_scale():
    """KID is in the judge's squared feature units: thousandths on Fashion-MNIST's judge, units
    on the emoji judge's; both show three significant digits, not a fixed decimal scale."""
    results = {
        "default": [_scored_run([(90, 60_000, 80.0, 0.757, 0.7, 0.5)])],
        "small": [_scored_run([(90, 60_000, 8.0, 0.000123, 0.7, 0.5)])],
    }
    table, _ = quality_report.summarize(
        results, REFERENCES, seconds=300, images=60_000, num_samples=5000
    )
    assert "| 80.00 | 0.757 | 0.700 | 0.500 |" in table
    assert "| 8.00 | 0.000123 | 0.700 | 0.500 |" in table
    assert "KID 1e-05" in table  # the real floor's, from REFERENCES


def test_each_snapshot_leaves_a_grid_of_its_scored_samples(tmp_path):
    from PIL import Image

    samples = np.random.default_rng(0).integers(0, 256, (100, 32, 32, 3), dtype=np.uint8)
    path = quality_report.save_grid(tmp_path, samples, "default", 2, 112_000)
    assert path == tmp_path / "grids" / "default-seed2-112k.png"
    grid = np.asarray(Image.open(path))
    # 64 of them, 8x8 with 2 px padding, upscaled by a whole factor for viewing.
    side = 8 * 34 + 2
    factor = grid.shape[0] // side
    assert grid.shape == (side * factor, side * factor, 3) and factor >= 2
    np.testing.assert_array_equal(grid[::factor, ::factor][2:34, 2:34], samples[0])


def test_recipe_rows_put_a_candidates_overrides_on_the_recipes_choices():
    rows = quality_rows.known_rows(["wide:model.d_width=64"])
    choices = {"model.g_width": 64, "model.d_width": 32, "train.ada_target": 0.0}
    names = ["article_dcgan", "auto", "auto+ada", "auto+wide", "default"]
    quality_rows.check_row_names(names, rows)
    selected = quality_rows.select_rows(names, rows, choices)
    assert [row.name for row in selected] == names
    assert selected[0].overrides is None and selected[4].overrides == {}
    assert selected[1].overrides == choices
    assert selected[2].overrides == {**choices, "train.ada_target": 0.6}
    assert selected[3].overrides == {**choices, "model.d_width": 64}
    assert "train.ada_target=0.6" in selected[2].description


@pytest.mark.parametrize("name", ["auto+nope", "auto+article_dcgan", "autoada", "nope"])
def test_unknown_rows_are_named(name):
    with pytest.raises(ValueError, match=rf"unknown rows \['{re.escape(name)}'\]"):
        quality_rows.check_row_names(["auto", name], quality_rows.known_rows([]))


def test_the_recipe_row_is_chosen_for_the_benchmarks_budget_not_the_configs_length():
    # 1,531 emoji: noto_emoji.py's 3,500 steps are 146 passes, the recipe's ADA rule needs 250.
    emoji = quality.base_config(noto_emoji.get_config())
    stats = {"splits": {"train": {"count": 1531}, "eval": {"count": 375}}, "channels": 3}
    assert quality_rows.recipe_choices(emoji, stats, images=224_000)["train.ada_target"] == 0.0
    assert quality_rows.recipe_choices(emoji, stats, images=672_000)["train.ada_target"] == 0.6
    # Equal seconds (no images budget): the recipe's own length, 224k images.
    assert quality_rows.recipe_choices(emoji, stats, images=0)["train.ada_target"] == 0.0
    assert emoji.train.steps == 3500  # the base config is left as it was


def test_record_reference_replaces_only_its_own_entry(tmp_path, monkeypatch):
    """--record_reference writes the reference's mean FD at the images budget for the evaluate
    stage, replacing an entry for the same judge, sample count, name and budget, keeping others."""
    import json

    from gan_keras.evaluation import reference_scores

    monkeypatch.setattr(reference_scores, "__file__", str(tmp_path / "reference_scores.py"))
    path = tmp_path / reference_scores.REFERENCE_FILE
    keep = {"judge_fingerprint": "j", "num_samples": 500, "name": "article DCGAN", "images": 1000}
    stale = {**keep, "images": 2000}
    fields = {"frechet_distance": 1.0, "frechet_distance_std": 0.0, "seeds": 1, "command": "x"}
    path.write_text(json.dumps([{**keep, **fields}, {**stale, **fields}]))
    runs = [
        {"snapshots": [{"images": 2000, "seconds": 1.0, "fd": fd}]} for fd in (10.0, 14.0, 12.0)
    ]
    quality_report.record_reference(runs, "j", 2000, 500, "--config=c.py ")
    entries = json.loads(path.read_text())
    assert entries[0] == {**keep, **fields}
    [new] = entries[1:]
    assert (new["frechet_distance"], new["frechet_distance_std"], new["seeds"]) == (12.0, 2.0, 3)
    assert new["command"].startswith("python -m benchmarks.quality --config=c.py --rows=")
    assert reference_scores.load(path) == entries
