"""benchmarks.task_targets: the issue's targets, checked on the evaluate stage's scores."""

from benchmarks import task_targets


def _run(model_fd, model_psnr, l1_fd=1.7, l1_psnr=21.0, with_reference=True):
    methods = {
        "bicubic_upsample": {"psnr": 15.6, "frechet_distance": 42.0},
        "model": {"psnr": model_psnr, "frechet_distance": model_fd},
    }
    if with_reference:
        methods["l1_reference"] = {"psnr": l1_psnr, "frechet_distance": l1_fd}
    return {"methods": methods, "references": {"real_floor": {"frechet_distance": 0.23}}}


def test_super_resolution_targets_use_the_seed_means():
    # Seeds at 0.43x and 0.55x of the L1-only FD: the mean, 0.49x, meets "<= 0.5x".
    runs = [_run(0.731, 19.7), _run(0.935, 19.6)]
    verdicts = dict(task_targets.targets("super_resolution", runs))
    assert verdicts == {
        "L1-only PSNR >= bicubic + 2 dB": True,
        "GAN FD <= 0.5 x L1-only FD": True,
        "GAN PSNR within 1.5 dB of L1-only": True,
    }
    verdicts = dict(task_targets.targets("super_resolution", [_run(0.9, 19.4), _run(0.9, 19.4)]))
    assert not verdicts["GAN FD <= 0.5 x L1-only FD"]
    assert not verdicts["GAN PSNR within 1.5 dB of L1-only"]


def test_runs_without_an_l1_only_model_meet_no_target_and_the_table_still_prints():
    runs = [_run(0.7, 19.7, with_reference=False)]
    assert task_targets.targets("super_resolution", runs) == [
        ("every target (no L1-only model: pass --l1_reference_dir)", False)
    ]
    text = task_targets.table({"super_resolution": runs})
    assert "| super_resolution | model | 19.7 |" in text
    assert "NOT met" in text
