"""The training settings the write-ups' code implied, by mechanism: drop_last, evaluation every N
steps, an epoch-stepped schedule with a lag, a warm-up's start and a decay's end, the precision,
explicit normalisation constants. Each is checked against what its source's mechanism computes
(torch's own CosineAnnealingLR, DeepSpeed's WarmupDecayLR formula, torch's DataLoader), and the
ones a run uses in real training runs on digits."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from helpers import stop_after

from imgzoo import data, runlog
from imgzoo.aggregate.reproduction import reproduction_frame
from imgzoo.aggregate.tables import runs_frame
from imgzoo.config import Run, Study, apply_overrides
from imgzoo.errors import ConfigError
from imgzoo.paths import BEST_MODEL, BEST_MODEL_PENDING, CHECKPOINT
from imgzoo.schema import train_keys_absent_as
from imgzoo.train import Preempted, build_parts, train
from imgzoo.training import checkpoint
from imgzoo.training.device import autocast, autocast_dtype
from imgzoo.training.device_data import DeviceData, steps_per_epoch
from imgzoo.training.evaluate import evaluate
from imgzoo.training.step import LrSchedule

CPU = torch.device("cpu")
CONFIG = {
    "datasets": ["digits"],
    "seeds": [0],
    "train": {"epochs": 3, "batch_size": 64, "lr": 0.003, "augment": "none"},
    "experiments": {"mlp": {"model": "mlp", "model_args": {"hidden": [64]}}},
}
NEW_KEYS = ("drop_last", "eval_every_steps", "schedule_step", "schedule_lag_epochs",
            "warmup_start_lr", "precision", "input_stats")


def spec_for(*overrides):
    return apply_overrides(Study(CONFIG).spec(Run("digits", "mlp", 0)), list(overrides))


def test_the_new_keys_leave_a_finished_runs_settings_as_they_were():
    """At their defaults the new keys are not in a run's settings (x-absent-as): the params and
    checkpoint key of every run made before them stay the same, so nothing re-runs."""
    assert set(NEW_KEYS) <= set(train_keys_absent_as())
    settings = spec_for().settings
    assert not set(NEW_KEYS) & set(settings.to_dict()["train"])
    assert all(key in settings.train for key in NEW_KEYS)  # the run itself sees every key
    changed = spec_for("drop_last=true", "precision=fp32").settings.to_dict()["train"]
    assert changed["drop_last"] is True and changed["precision"] == "fp32"


# --- drop_last -----------------------------------------------------------------------------------


def test_drop_last_steps_as_torchs_data_loader():
    for n, batch in ((45_000, 128), (50_000, 128), (1_797, 64), (129, 64)):
        loader = torch.utils.data.DataLoader(range(n), batch_size=batch, drop_last=True)
        assert steps_per_epoch(n, batch, drop_last=True) == len(loader)
    assert steps_per_epoch(45_000, 128, drop_last=True) == 351  # study 1's source
    with pytest.raises(ConfigError, match="drop_last with batch_size 256 skips every one"):
        steps_per_epoch(100, 256, drop_last=True)


def test_drop_last_batches_are_full_and_skip_the_rest(digits_h5):
    prepared = data.load(digits_h5)
    images = DeviceData(prepared, CPU, seed=0, batch_size=64, augmentation="none",
                        train_subset_size=200, drop_last=True)
    n = images.size("train")
    batches = list(images.batches(1))
    assert len(batches) == n // 64 and all(len(y) == 64 for _, y in batches)
    assert images.images_per_epoch == 64 * (n // 64) < n


# --- the learning rate ---------------------------------------------------------------------------


def test_epoch_stepped_cosine_with_lag_2_is_study_3s_scheduler():
    """src/tnt/train.py: CosineAnnealingLR(T_max=epochs), `scheduler.step(epoch - 1)` after each
    epoch. Its rate per epoch, from torch itself, equals ours at every step of that epoch."""
    for epochs in (30, 10, 5):
        cfg = {**spec_for().train, "schedule": "cosine", "epochs": epochs, "lr": 1e-4,
               "schedule_step": "epoch", "schedule_lag_epochs": 2}
        ours = LrSchedule(cfg, steps_per_epoch=7)
        optimizer = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=1e-4)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs)
        source = []
        with warnings.catch_warnings():  # step(epoch) is deprecated in torch
            warnings.simplefilter("ignore")
            for epoch in range(epochs):
                source.append(optimizer.param_groups[0]["lr"])
                scheduler.step(epoch - 1)
        for epoch, lr in enumerate(source):
            for step in range(epoch * 7, epoch * 7 + 7):
                assert ours(step) == pytest.approx(lr, rel=1e-12), (epochs, epoch)
        last = {30: 0.024, 10: 0.21, 5: 0.65}[epochs]  # the 2.4% / 21% / 65%
        assert source[-1] / 1e-4 == pytest.approx(last, abs=0.005)


def test_epoch_stepped_without_lag_holds_each_epoch_at_its_first_step():
    cfg = {**spec_for().train, "schedule": "cosine", "epochs": 4, "schedule_step": "epoch"}
    per_epoch, per_step = LrSchedule(cfg, 10), LrSchedule({**cfg, "schedule_step": "step"}, 10)
    assert [per_epoch(s) for s in range(40)] == [per_step(10 * (s // 10)) for s in range(40)]


def deepspeed_warmup_decay(iteration, *, min_lr, max_lr, warmup, total):
    """DeepSpeed's WarmupDecayLR with warmup_type linear (deepspeed/runtime/lr_schedules.py):
    min + (max - min) * gamma, gamma = it / warmup, then (total - it) / (total - warmup)."""
    if iteration < warmup:
        gamma = iteration / warmup
    else:
        gamma = max(0.0, (total - iteration) / max(1.0, total - warmup))
    return min_lr + (max_lr - min_lr) * gamma


def test_warm_up_from_and_decay_to_deepspeeds_warmup_min_lr():
    """Study 2: 1e-6 -> 2e-4 over 500 steps, linear decay back to 1e-6 at step 5,000. DeepSpeed
    steps its scheduler after each optimizer step, so its step i trains at iteration i - 1
    (one step later than here, its first two at 1e-6): one step in 5,000."""
    cfg = {**spec_for().train, "schedule": "linear", "lr": 2e-4, "epochs": 50,
           "warmup_epochs": 5, "warmup_start_lr": 1e-6, "min_lr": 1e-6}
    ours = LrSchedule(cfg, steps_per_epoch=100)
    assert ours.warmup == 500 and ours.total == 5_000
    for step in range(5_000):
        expected = deepspeed_warmup_decay(step, min_lr=1e-6, max_lr=2e-4, warmup=500, total=5_000)
        assert ours(step) == pytest.approx(expected, rel=1e-12, abs=1e-18), step
    assert ours(0) == 1e-6 and ours(4_999) > 1e-6  # reaches 1e-6 after the last step
    # study 2's warm-up at 351 steps per epoch (drop_last on 45k images)
    assert LrSchedule({**cfg, "warmup_epochs": 1.425}, 351).warmup == 500


def test_without_a_start_the_warm_up_is_as_before():
    cfg = {**spec_for().train, "warmup_epochs": 1, "epochs": 2, "lr": 0.1}
    schedule = LrSchedule(cfg, steps_per_epoch=10)
    expected = [0.1 * (k + 1) / 10 for k in range(10)]
    assert [schedule(k) for k in range(10)] == pytest.approx(expected)


def test_a_lag_needs_the_epoch_stepped_schedule():
    config = {**CONFIG, "train": {**CONFIG["train"], "schedule_lag_epochs": 2}}
    with pytest.raises(ConfigError, match="schedule_lag_epochs 2 needs schedule_step: epoch"):
        Study(config)


# --- precision and normalisation constants -------------------------------------------------------


def test_precision_decides_the_autocast():
    cuda = torch.device("cuda")
    assert autocast_dtype("auto", cuda) is torch.bfloat16 and autocast_dtype("auto", CPU) is None
    assert autocast_dtype("fp32", cuda) is None and autocast_dtype("bf16", CPU) is torch.bfloat16
    x = torch.randn(4, 8)
    layer = torch.nn.Linear(8, 2)
    with autocast(CPU, "bf16"):
        assert layer(x).dtype == torch.bfloat16
    with autocast(CPU, "fp32"):
        assert layer(x).dtype == torch.float32


def test_explicit_constants_standardise_the_inputs(digits_h5):
    prepared = data.load(digits_h5)
    stats = {"mean": [0.25], "std": [0.5]}
    images = DeviceData(prepared, CPU, seed=0, batch_size=64, augmentation="none",
                        train_subset_size=200, input_stats=stats)
    x, _ = next(images.eval_batches("test", 8))
    raw = torch.from_numpy(prepared.test_x[:8]).permute(0, 3, 1, 2).float() / 255
    torch.testing.assert_close(x, (raw - 0.25) / 0.5)
    own = DeviceData(prepared, CPU, seed=0, batch_size=64, augmentation="none",
                     train_subset_size=200)
    assert own.mean.flatten().tolist() == pytest.approx(list(prepared.mean))
    with pytest.raises(ConfigError, match="3 means and 3 stds for a dataset of 1 channels"):
        DeviceData(prepared, CPU, seed=0, batch_size=64, augmentation="none",
                   train_subset_size=200, input_stats={"mean": [0.5] * 3, "std": [0.5] * 3})
    # for a model that standardises its own input (a 3-channel backbone on 1-channel digits) the
    # constants are the model's: the data, served raw, neither checks nor uses them
    raw = DeviceData(prepared, CPU, seed=0, batch_size=64, augmentation="none",
                     train_subset_size=200, normalize=False,
                     input_stats={"mean": [0.5] * 3, "std": [0.5] * 3})
    x, _ = next(raw.eval_batches("test", 8))
    torch.testing.assert_close(x, torch.from_numpy(prepared.test_x[:8]).permute(0, 3, 1, 2) / 255)
    config = {**CONFIG, "train": {**CONFIG["train"], "input_stats": {"mean": [0.5], "std": [1, 1]}}}
    with pytest.raises(ConfigError, match="input_stats has 1 means and 2 stds"):
        Study(config)


def test_a_run_in_fp32_with_constants_and_drop_last_learns(digits_h5, tmp_path):
    spec = spec_for("precision=fp32", "drop_last=true", "input_stats={mean: [0.3], std: [0.4]}")
    log = train(spec, digits_h5, tmp_path, threads=1)
    n = len(data.load(digits_h5).train_y)
    assert len(log.steps["loss"]) == 3 * (n // 64)
    assert log.epochs["test_acc"][-1] > 0.85
    assert log.spec["settings"]["train"]["input_stats"] == {"mean": [0.3], "std": [0.4]}


# --- evaluation every N steps --------------------------------------------------------------------

EVERY = 7


@pytest.fixture(scope="module")
def evaluated(digits_h5, tmp_path_factory):
    """A run that evaluates every 7 steps (21 steps per epoch: epoch ends coincide)."""
    out = tmp_path_factory.mktemp("every7")
    spec = spec_for(f"eval_every_steps={EVERY}", "epochs=3")
    return spec, train(spec, digits_h5, out, threads=1), out


def test_every_evaluation_is_in_the_log(evaluated, digits_h5):
    spec, log, out = evaluated
    steps = math.ceil(len(data.load(digits_h5).train_y) / 64)
    read = runlog.read(out / "metrics.h5")
    evaluations = read.evaluations
    assert list(evaluations) == list(runlog.EVALUATION_SERIES)
    assert list(evaluations["step"]) == list(range(EVERY, 3 * steps + 1, EVERY))
    assert list(evaluations["epoch"]) == [(s - 1) // steps + 1 for s in evaluations["step"]]
    assert evaluations["step"].dtype == np.int64 and evaluations["val_acc"].dtype == np.float64
    # the epoch rows stay as they were: where an evaluation falls on an epoch's end, the same
    ends = {s: i for i, s in enumerate(evaluations["step"])}
    for row, epoch in enumerate(read.epochs["epoch"]):
        if epoch * steps in ends:
            assert read.epochs["test_acc"][row] == evaluations["test_acc"][ends[epoch * steps]]
    assert len(read.epochs["epoch"]) == 3


def test_the_best_validation_evaluation_chooses_the_model(evaluated, digits_h5):
    spec, log, out = evaluated
    evaluations = log.evaluations
    best = int(np.argmax(evaluations["val_acc"]))  # the first maximum
    assert log.attrs["best_step"] == evaluations["step"][best]
    assert log.attrs["best_epoch"] == evaluations["epoch"][best]
    parts = build_parts(spec, data.load(digits_h5), CPU)
    parts.network.model.load_state_dict(checkpoint.load_weights(out / BEST_MODEL))
    result = evaluate(parts.network.model, parts.data, "test", 128)
    assert result.acc == evaluations["test_acc"][best]
    assert np.trace(log.confusion) / log.confusion.sum() == evaluations["test_acc"][best]
    assert not (out / BEST_MODEL_PENDING).exists()
    row = runs_frame([runlog.read(out / "metrics.h5")]).iloc[0]
    assert row["test_acc_at_best_val"] == evaluations["test_acc"][best]
    assert row["best_epoch"] == evaluations["epoch"][best]
    assert row["best_test_acc"] == evaluations["test_acc"].max()
    assert (row["n_evaluations"], row["eval_every_steps"]) == (len(evaluations["step"]), EVERY)


def test_evaluation_time_is_not_training_time(evaluated):
    _, log, _ = evaluated
    assert (log.epochs["train_time"] < log.epochs["epoch_time"]).all()


def test_a_run_evaluated_every_n_steps_resumes_to_the_bit(evaluated, digits_h5, tmp_path):
    """Preempted a few steps into epoch 3, after an evaluation there; the resumed run's log and
    best weights equal the uninterrupted run's."""
    spec, whole, whole_dir = evaluated
    steps = math.ceil(len(data.load(digits_h5).train_y) / 64)
    with pytest.raises(Preempted):
        train(spec, digits_h5, tmp_path, threads=1, stop_flag=stop_after(2 * steps + EVERY + 2))
    assert (tmp_path / CHECKPOINT).exists()
    resumed = train(spec, digits_h5, tmp_path, threads=1)
    for key in runlog.EVALUATION_SERIES:
        np.testing.assert_array_equal(resumed.evaluations[key], whole.evaluations[key], key)
    assert resumed.attrs["best_step"] == whole.attrs["best_step"]
    np.testing.assert_array_equal(resumed.confusion, whole.confusion)
    a = checkpoint.load_weights(tmp_path / BEST_MODEL)
    b = checkpoint.load_weights(whole_dir / BEST_MODEL)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def test_a_pending_best_of_a_cut_epoch_is_dropped_on_resume(evaluated, digits_h5, tmp_path):
    """A best evaluation inside an epoch that never reached its checkpoint must not become
    model_best.pt: resuming keeps the best the checkpoint names, and the resumed epoch makes
    its own."""
    spec, whole, _ = evaluated
    steps = math.ceil(len(data.load(digits_h5).train_y) / 64)
    with pytest.raises(Preempted):  # after epoch 2's second evaluation, which improves
        train(spec, digits_h5, tmp_path, threads=1, stop_flag=stop_after(steps + 2 * EVERY + 1))
    pending = list(tmp_path.glob(BEST_MODEL_PENDING.format(step="*")))
    assert len(pending) == 1  # an improving evaluation of epoch 2, not yet model_best.pt
    step = int(pending[0].name.removeprefix("model_best.step").removesuffix(".pt"))
    assert steps < step <= 2 * steps
    before = checkpoint.load_weights(tmp_path / BEST_MODEL)
    with pytest.raises(Preempted):  # resume, and stop before the first step
        train(spec, digits_h5, tmp_path, threads=1, stop_flag=stop_after(0))
    assert not list(tmp_path.glob(BEST_MODEL_PENDING.format(step="*")))
    after = checkpoint.load_weights(tmp_path / BEST_MODEL)
    for key in before:
        torch.testing.assert_close(after[key], before[key], rtol=0, atol=0, msg=key)
    resumed = train(spec, digits_h5, tmp_path, threads=1)
    assert resumed.attrs["best_step"] == whole.attrs["best_step"]
    np.testing.assert_array_equal(resumed.confusion, whole.confusion)


def test_best_test_numbers_meet_the_best_test_evaluation_like_with_like(evaluated, tmp_path):
    """A source that published its best of many test evaluations meets ours chosen the same
    way, where our runs evaluated every N steps too; the comparability column says so."""
    _, log, out = evaluated
    runs = runs_frame([runlog.read(out / "metrics.h5")])
    entry = {"experiment": "mlp", "dataset": "digits", "value": 90.0, "measures": "best_test",
             "source": "a write-up", "note": "one run"}
    row = reproduction_frame(runs, [entry]).iloc[0]
    assert row["ours_metric"] == "best_test_acc"
    assert row["ours_mean"] == log.evaluations["test_acc"].max()
    assert row["comparability"].startswith(
        f"like with like: ours is also the best of the test evaluations every {EVERY} steps"
    )
    assert row["comparability"].endswith("; one run")
    final = reproduction_frame(runs, [{**entry, "measures": "final_test"}]).iloc[0]
    assert final["ours_metric"] == "final_test_acc"
    # a run evaluated once per epoch keeps the honest number and says why it differs
    once = runs.assign(n_evaluations=0, eval_every_steps=0)
    row = reproduction_frame(once, [entry]).iloc[0]
    assert row["ours_metric"] == "test_acc_at_best_val"
    assert row["comparability"].startswith("the source chose its epoch on the test set")
