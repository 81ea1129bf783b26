"""The parts of a run, each alone: the data on the device, the step, evaluation, the checkpoint,
the history, the code's version."""

import re
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import imgzoo
from imgzoo import data, runlog
from imgzoo.config import Run, Study
from imgzoo.errors import CheckpointError
from imgzoo.spec import RunId, RunSpec, Settings
from imgzoo.train import build_parts
from imgzoo.training import checkpoint
from imgzoo.training.device_data import DeviceData, steps_per_epoch
from imgzoo.training.evaluate import evaluate
from imgzoo.training.history import History
from imgzoo.training.step import LrSchedule, train_epoch

CPU = torch.device("cpu")
CONFIG = {
    "datasets": ["digits"],
    "seeds": [0],
    "train": {"epochs": 2, "batch_size": 64, "lr": 0.003},
    "experiments": {"mlp": {"model": "mlp", "model_args": {"hidden": [64]}, "augment": "none"}},
}


@pytest.fixture(scope="module")
def prepared(digits_h5):
    return data.load(digits_h5)


@pytest.fixture
def spec():
    return Study(CONFIG).spec(Run("digits", "mlp", 0))


def device_data(prepared, batch_size=64, augmentation="standard"):
    return DeviceData(
        prepared,
        CPU,
        seed=0,
        batch_size=batch_size,
        augmentation=augmentation,
        train_subset_size=200,
    )


def test_an_epoch_visits_every_training_image_once(prepared):
    images = device_data(prepared, augmentation="none")
    n = images.size("train")
    batches = list(images.batches(1))
    assert len(batches) == images.steps_per_epoch == steps_per_epoch(n, 64)
    assert all(len(y) == 64 for _, y in batches[:-1])
    assert sum(len(y) for _, y in batches) == n
    # The inputs are the normalised training images: every image once, in a shuffled order.
    seen = torch.cat([x for x, _ in batches]).reshape(n, -1)
    expected = images.inputs(images.x["train"]).reshape(n, -1)
    assert not torch.equal(seen, expected)
    rows = [np.unique(a.numpy(), axis=0, return_counts=True) for a in (seen, expected)]
    for got, want in zip(rows[0], rows[1], strict=True):
        np.testing.assert_array_equal(got, want)
    labels = torch.cat([y for _, y in batches])
    assert torch.equal(labels.bincount(), images.y["train"].bincount())


def test_an_epochs_batches_depend_on_seed_and_epoch_only(prepared):
    images = device_data(prepared)
    first = [x for x, _ in images.batches(3)]
    torch.manual_seed(123)  # whatever ran before: the epoch seeds its own randomness
    again = [x for x, _ in images.batches(3)]
    other = next(iter(images.batches(4)))[0]
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0], other)


def test_a_last_batch_of_one_image_joins_the_one_before():
    assert steps_per_epoch(129, 64) == 2  # 64 + 65, never a batch of 1 for BatchNorm
    assert steps_per_epoch(130, 64) == 3
    assert steps_per_epoch(10, 64) == 1


def test_the_schedule_warms_up_then_decays_to_min_lr(spec):
    cfg = {**spec.train, "warmup_epochs": 1, "epochs": 3, "lr": 0.1, "min_lr": 0.001}
    schedule = LrSchedule(cfg, steps_per_epoch=10)
    assert schedule(0) == pytest.approx(0.01) and schedule(9) == pytest.approx(0.1)
    lrs = [schedule(i) for i in range(10, 30)]
    assert lrs == sorted(lrs, reverse=True) and lrs[-1] > 0.001


def test_the_step_and_the_epoch_learn_without_the_run(prepared, spec):
    parts = build_parts(spec, prepared, CPU)
    before = evaluate(parts.network.net, parts.data, "val", 128)
    for epoch in (1, 2):
        result = train_epoch(
            parts.step,
            parts.data.batches(epoch),
            first_step=(epoch - 1) * parts.data.steps_per_epoch,
            total_steps=parts.data.steps_per_epoch,
        )
        assert len(result.step_losses) == parts.data.steps_per_epoch
        assert result.lr == result.step_lrs[-1] == parts.step.lr
    after = evaluate(parts.network.net, parts.data, "val", 128, predictions=True)
    assert before.acc < 0.3 < 0.8 < after.acc  # chance is 0.1
    assert after.predictions.shape == (parts.data.size("val"),)
    assert (after.predictions == prepared.val_y).mean() == after.acc


def test_the_epoch_stops_between_steps_when_asked(prepared, spec):
    from imgzoo.training.step import Preempted

    parts = build_parts(spec, prepared, CPU)
    asked = iter([False, False, True])
    with pytest.raises(Preempted):
        train_epoch(
            parts.step,
            parts.data.batches(1),
            first_step=0,
            total_steps=1,
            stop_flag=lambda: next(asked),
        )


def test_the_best_epoch_is_the_first_of_the_best_validation_accuracy():
    history = History()
    others = dict.fromkeys(runlog.EPOCH_SERIES, 0.0)
    improved = [
        history.add_epoch({**others, "epoch": e, "val_acc": acc}, [], [])
        for e, acc in ((1, 0.5), (2, 0.7), (3, 0.7), (4, 0.6))
    ]
    assert improved == [True, True, False, False]
    assert history.best_epoch == 2 and history.epochs_completed == 4
    restored = History(history.state())  # as a checkpoint carries it
    assert (restored.best_epoch, restored.best_val_acc) == (2, 0.7)
    assert restored.epochs == history.epochs


def test_a_checkpoint_resumes_only_its_own_settings(tmp_path, spec):
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    path = tmp_path / "checkpoint.pt"
    checkpoint.save(
        path, spec=spec, epoch=4, model=model, optimizer=optimizer, history=History().state()
    )
    state = checkpoint.load(path, spec)
    assert state["epoch"] == 4
    torch.testing.assert_close(state["model"]["weight"], model.weight.detach())
    other_seed = replace(spec, id=replace(spec.id, seed=1))
    lr = spec.with_settings(replace(spec.settings, train={**spec.train, "lr": 0.5}))
    for other in (other_seed, lr):
        with pytest.warns(UserWarning, match="other settings"):
            assert checkpoint.load(path, other) is None
    # what a job asks SLURM for is no setting: a new time limit keeps the checkpoint
    assert checkpoint.load(path, spec.with_resources({"time_min": 600}))["epoch"] == 4
    assert checkpoint.load(tmp_path / "none.pt", spec) is None
    checkpoint.save_atomic({"something": "else"}, path)
    with pytest.raises(CheckpointError, match="checkpoint.pt: not an imgzoo checkpoint"):
        checkpoint.load(path, spec)
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temporary left


def test_the_version_names_the_commit_of_a_checkout():
    version = imgzoo.version()
    assert version.startswith(imgzoo.__version__)
    checkout = Path(imgzoo.__file__).resolve().parents[2]
    head = subprocess.run(
        ["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True
    )
    if head.returncode != 0:  # an installed package, or no git: the package version alone
        assert version == imgzoo.__version__
        return
    found = re.fullmatch(re.escape(imgzoo.__version__) + r"\+g([0-9a-f]{7,})(\.dirty)?", version)
    assert found, version
    assert head.stdout.strip().startswith(found.group(1))
    assert imgzoo.version() is version  # asked once per process


@pytest.mark.parametrize(
    "stage,setting,advice",
    [
        ("training", "batch_size 512", "batch_size 512: try a smaller batch_size"),
        ("evaluation", "eval_batch_size 1000", "eval_batch_size 1000: try a smaller eval_batch"),
        ("setup", None, "do not fit on this GPU"),
    ],
)
def test_gpu_out_of_memory_names_the_setting_to_lower(stage, setting, advice):
    from imgzoo.errors import RunFailed
    from imgzoo.train import out_of_memory

    spec = RunSpec(RunId("s", "big", "stl10", 0), Settings("mlp", {}, {}, {}))
    with pytest.raises(RunFailed, match=f"in {stage} of experiment 'big' on stl10.*{advice}"):
        with out_of_memory(spec, stage, setting):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20 GiB")


def test_the_runs_crop_padding_reaches_its_batches(prepared, spec):
    """`crop_padding: 0` leaves a crop nothing to shift: the batches are the images as they
    are; the default 4 px shifts them."""
    def first_batch(padding):
        run = spec.with_settings(
            replace(spec.settings, train={**spec.train, "augment": "crop", "crop_padding": padding})
        )
        parts = build_parts(run, prepared, CPU)
        x, y = next(parts.data.batches(1))
        return x, parts.data.train_batch(_order_of_epoch_one(parts, len(y)), None)[0]

    augmented, plain = first_batch(0)
    assert torch.equal(augmented, plain)
    augmented, plain = first_batch(4)
    assert not torch.equal(augmented, plain)


def _order_of_epoch_one(parts, n):
    from imgzoo.training.device_data import seed_epoch

    generator = seed_epoch(parts.data.seed, 1, torch.Generator())
    return torch.randperm(parts.data.size("train"), generator=generator)[:n]
