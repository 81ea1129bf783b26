"""The training step as a CUDA graph (`train.cuda_graphs`): the setting, the CPU's eager fallback,
the rehearsal that trains nothing, the per-epoch reset of the random state a graph draws, and
exact resumes. What needs CUDA is marked `cuda` (gpu_check's `cuda_tests` section runs it)."""

import numpy as np
import pytest
import torch
from helpers import stop_after

from imgzoo import data, runlog
from imgzoo.config import Run, Study, apply_overrides
from imgzoo.errors import ConfigError, RunFailed
from imgzoo.progress import Progress
from imgzoo.spec import Settings
from imgzoo.train import Preempted, build_parts, train
from imgzoo.training.graphed_step import Rehearsal
from imgzoo.training.step import train_epoch

EXACT = [k for k in runlog.EPOCH_SERIES if k not in runlog.TIMING_SERIES]
CPU = torch.device("cpu")
CONFIG = {
    "datasets": ["digits"],
    "seeds": [0],
    "train": {"epochs": 2, "batch_size": 64, "lr": 0.003, "augment": "standard"},
    "experiments": {
        "mlp": {"model": "mlp", "model_args": {"hidden": [64], "dropout": 0.2}},
        "mixstyle": {"model": "resnet18", "model_args": {"mixstyle": 1}, "batch_size": 16},
    },
}


def spec_for(experiment="mlp", *overrides):
    return apply_overrides(Study(CONFIG).spec(Run("digits", experiment, 0)), list(overrides))


@pytest.fixture(scope="module")
def prepared(digits_h5):
    return data.load(digits_h5)


def test_the_setting_leaves_finished_runs_settings_alone():
    # The default (false until a GPU has measured the graph) is what runs before the key did:
    # their settings do not name the key, and read back, they hold `false`.
    assert spec_for().train["cuda_graphs"] is False
    assert spec_for("mlp", "cuda_graphs=auto").settings.to_dict()["train"]["cuda_graphs"] == "auto"
    eager = spec_for("mlp", "cuda_graphs=false")
    assert eager.train["cuda_graphs"] is False
    assert "cuda_graphs" not in eager.settings.to_dict()["train"]
    old = eager.settings.to_dict()
    assert Settings.from_dict(old).train["cuda_graphs"] is False
    assert spec_for("mlp", "cuda_graphs=true").train["cuda_graphs"] is True


def test_a_wrong_value_is_an_error_naming_the_key():
    config = {**CONFIG, "train": {**CONFIG["train"], "cuda_graphs": "sometimes"}}
    with pytest.raises(ConfigError, match="cuda_graphs"):
        Study(config).spec(Run("digits", "mlp", 0))


@pytest.mark.parametrize("setting", ["true", "auto"])
def test_on_the_cpu_the_step_runs_eagerly_and_says_so_once(digits_h5, tmp_path, setting):
    lines = tmp_path / "progress.txt"
    with lines.open("w") as stream:
        log = train(spec_for("mlp", f"cuda_graphs={setting}"), digits_h5, tmp_path / "run",
                    threads=1, progress=Progress(2, stream=stream))
    said = [line for line in lines.read_text().splitlines() if "cuda_graphs" in line]
    assert said == [f"train.cuda_graphs: {setting}: CUDA graphs need a GPU; on the cpu the step "
                    "runs eagerly"]
    assert log.attrs["capture_time_s"] == 0.0
    assert runlog.read(tmp_path / "run" / "metrics.h5").attrs["capture_time_s"] == 0.0
    eager = train(spec_for("mlp", "cuda_graphs=false"), digits_h5, tmp_path / "eager", threads=1)
    for key in EXACT:  # the fallback is the eager step itself
        np.testing.assert_array_equal(log.epochs[key], eager.epochs[key], err_msg=key)


def assert_resumed_and_repeated_runs_equal(whole, spec, digits_h5, tmp_path) -> None:
    """The run stopped a few steps into epoch 2 (as SLURM's time-limit signal would stop it) and
    resumed, and the run made again, each equal `whole` to the bit."""
    steps = data.load(digits_h5).train_y.size // 64 + 1
    with pytest.raises(Preempted):
        train(spec, digits_h5, tmp_path / "resumed", threads=1, stop_flag=stop_after(steps + 5))
    resumed = train(spec, digits_h5, tmp_path / "resumed", threads=1)
    again = train(spec, digits_h5, tmp_path / "again", threads=1)
    for key in EXACT:
        np.testing.assert_array_equal(resumed.epochs[key], whole.epochs[key], err_msg=key)
        np.testing.assert_array_equal(again.epochs[key], whole.epochs[key], err_msg=key)
    np.testing.assert_array_equal(resumed.steps["loss"], whole.steps["loss"])


def test_deterministic_runs_resume_exactly_with_the_setting_on(digits_h5, tmp_path):
    spec = spec_for("mlp", "cuda_graphs=true", "epochs=3")
    whole = train(spec, digits_h5, tmp_path / "whole", threads=1)
    assert_resumed_and_repeated_runs_equal(whole, spec, digits_h5, tmp_path)


def _state(parts) -> list[torch.Tensor]:
    model, optimizer = parts.network.model, parts.step.optimizer
    tensors = [*model.parameters(), *model.buffers()]
    tensors += [v for s in optimizer.state.values() for v in s.values() if torch.is_tensor(v)]
    return [t.detach().clone() for t in tensors]


def _rehearse(parts, steps=3):
    """What GraphedStep.prepare does before it captures, on the CPU: steps on fixed rows."""
    rows = torch.arange(parts.data.batch_size)
    with Rehearsal(parts.network.model, parts.step.optimizer, [parts.data.generator]) as r:
        for _ in range(steps):
            parts.step.update(*parts.data.train_batch(rows, parts.data.generator))
        return r.drew_on_host()


def _epochs(parts, n=2):
    losses = []
    for epoch in range(1, n + 1):
        result = train_epoch(parts.graphed_step, parts.graphed_step.batches(epoch),
                             first_step=(epoch - 1) * parts.data.steps_per_epoch,
                             total_steps=parts.data.steps_per_epoch)
        losses.append(result.step_losses)
    return np.concatenate(losses)


@pytest.mark.parametrize("optimizer", ["adamw", "adam", "momentum", "sgd"])
def test_a_rehearsal_trains_nothing(prepared, optimizer):
    """The steps before a capture change weights, optimizer state and generators; afterwards all
    is as before, optimizer state they created is that of no step yet, and the run trains the
    same numbers as without them (from the start and mid-run)."""
    # without dropout: on the CPU, the device's generator is the host's
    spec = spec_for("mlp", f"optimizer={optimizer}", "model_args.dropout=0")
    plain, rehearsed = build_parts(spec, prepared, CPU), build_parts(spec, prepared, CPU)
    before = _state(rehearsed)
    assert _rehearse(rehearsed) is False
    after = _state(rehearsed)
    for a, b in zip(before, after, strict=False):
        assert torch.equal(a, b)
    assert all(not v.any() for v in after[len(before):])  # created by the rehearsal: zero
    np.testing.assert_array_equal(_epochs(rehearsed, 1), _epochs(plain, 1))
    assert _rehearse(rehearsed) is False  # mid-run: state exists, it is put back as it was
    np.testing.assert_array_equal(_epochs(rehearsed), _epochs(plain))


def test_a_step_that_draws_on_the_host_is_found(prepared):
    """MixStyle tosses its coin on the CPU: a graph would replay one toss forever."""
    assert _rehearse(build_parts(spec_for("mixstyle"), prepared, CPU), steps=2) is True


def test_each_epoch_reseeds_the_generators_a_graph_reads_in_place(prepared):
    """A graph draws from the generator objects it was captured with: each epoch reseeds those
    objects (not new ones), so an epoch's batches are (seed, epoch)'s whatever drew before."""
    spec = spec_for("mlp", "augment=standard")
    fresh, used = build_parts(spec, prepared, CPU), build_parts(spec, prepared, CPU)
    generator = used.data.generator
    torch.rand(1000, generator=generator), torch.rand(1000)  # draws a graph or a rehearsal made
    for epoch in (1, 3):
        for (x1, y1), (x2, y2) in zip(fresh.data.batches(epoch), used.data.batches(epoch),
                                      strict=True):
            assert torch.equal(x1, x2) and torch.equal(y1, y2)
        assert used.data.generator is generator
    rows = [r for r in used.data.batch_indices(2)]
    assert [len(r) for r in rows[:-1]] == [64] * (len(rows) - 1)  # all full but the last
    assert sorted(torch.cat(rows).tolist()) == list(range(used.data.size("train")))


def test_without_a_graph_the_step_is_the_eager_one(prepared):
    parts = build_parts(spec_for(), prepared, CPU)
    assert parts.graphed_step.prepare(note=lambda line: None) == 0.0
    assert parts.graphed_step.graph is None
    a, b = build_parts(spec_for(), prepared, CPU), build_parts(spec_for(), prepared, CPU)
    for (x1, y1), (x2, y2) in zip(a.graphed_step.batches(1), b.data.batches(1), strict=True):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)


# ---- on a GPU (gpu_check's cuda_tests) -----------------------------------------------------

@pytest.mark.cuda
def test_the_step_is_captured_and_resumes_exactly_on_the_gpu(digits_h5, tmp_path):
    spec = spec_for("mlp", "cuda_graphs=true", "device=cuda", "epochs=3")
    whole = train(spec, digits_h5, tmp_path / "whole", threads=1)
    assert whole.attrs["capture_time_s"] > 0
    assert whole.epochs["test_acc"][-1] > 0.25  # it learns (chance: 0.1; 0.44 eager on a CPU)
    assert_resumed_and_repeated_runs_equal(whole, spec, digits_h5, tmp_path)


@pytest.mark.cuda
def test_graph_replays_repeat_with_the_seed_and_draw_anew_each_step(prepared):
    """Replays read the lr and the rows copied in before them, and draw new augmentation and
    dropout each step: two epochs' losses differ step by step, and repeat when reseeded."""
    cuda = torch.device("cuda")
    parts = build_parts(spec_for("mlp", "device=cuda", "cuda_graphs=true"), prepared, cuda)
    assert parts.graphed_step.prepare() > 0 and parts.graphed_step.graph is not None
    first = _epochs(parts, 1)
    parts2 = build_parts(spec_for("mlp", "device=cuda", "cuda_graphs=true"), prepared, cuda)
    parts2.graphed_step.prepare()
    np.testing.assert_array_equal(_epochs(parts2, 1), first)
    assert len(set(first.tolist())) == len(first)
    assert parts.graphed_step.lr == parts.step.schedule(parts.data.steps_per_epoch - 1)


@pytest.mark.cuda
def test_a_step_that_draws_on_the_host_stays_eager_on_the_gpu(prepared):
    cuda = torch.device("cuda")
    notes = []
    auto = build_parts(spec_for("mixstyle", "device=cuda"), prepared, cuda)
    assert auto.graphed_step.prepare(notes.append) == 0.0 and auto.graphed_step.graph is None
    assert "draws random numbers on the host" in notes[0]
    forced = build_parts(spec_for("mixstyle", "device=cuda", "cuda_graphs=true"), prepared, cuda)
    with pytest.raises(RunFailed, match="cuda_graphs: true, but the step draws"):
        forced.graphed_step.prepare()


@pytest.mark.cuda
def test_graphs_and_eager_steps_train_alike(prepared):
    """Not necessarily to the bit (a tensor learning rate): close, from the same start."""
    cuda = torch.device("cuda")
    graphed = build_parts(spec_for("mlp", "device=cuda", "cuda_graphs=true"), prepared, cuda)
    graphed.graphed_step.prepare()
    eager = build_parts(spec_for("mlp", "device=cuda", "cuda_graphs=false"), prepared, cuda)
    np.testing.assert_allclose(_epochs(graphed), _epochs(eager), rtol=1e-2)

