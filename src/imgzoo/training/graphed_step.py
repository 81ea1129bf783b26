"""The training step as one CUDA graph, replayed (`train.cuda_graphs`).

A small model at a study's batch size leaves a GPU waiting for the CPU, which launches the
step's hundreds of kernels one by one (docs/performance.md). A CUDA graph of the whole step (the
batch's gather and augmentation, forward, backward and the fused optimizer) is launched once.

How (`torch.cuda.graph` over the whole step; torch.compile's `reduce-overhead` mode graphs only
what it compiles, the model, and compiles for tens of seconds per model):

- `prepare()`, once per attempt of a run: a few rehearsal steps on fixed rows of the training
  set, on a side stream (CUDA's and cuDNN's lazy set-up, torch.compile's compilation), the
  capture of one step, and then everything the rehearsal changed put back (`Rehearsal`): it
  trains nothing, so the run's numbers do not depend on the epoch or attempt it was captured in.
- every full batch: its rows copied into the graph's index tensor, the step's learning rate into
  the graph's lr tensor (the fused optimizers read a tensor lr), one replay;
- the epoch's last, partial batch (another shape) runs eagerly, as every step does without graphs.

Random numbers: the graph draws from the augmentation's generator (registered with the graph)
and from torch's default CUDA generator (dropout), each at the seed and offset that generator
holds when the graph is replayed. `seed_epoch` reseeds both objects in place at every epoch, so an
epoch draws what (seed, epoch) says, as an eager step does, whatever ran before it.

Not safe to capture: a step that draws random numbers on the host (MixStyle's coin) would replay
the draw of the capture forever; a step that waits for the GPU cannot be captured. `auto` then
trains eagerly, with a note in the run's log; `true` is an error.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

from imgzoo.errors import RunFailed
from imgzoo.training.device_data import DeviceData
from imgzoo.training.step import TrainStep

# Rehearsal steps before the capture (torch's examples use 3; cuDNN's autotuning, where
# `deterministic: false` turns it on, needs one).
REHEARSAL_STEPS = 3


class NotCapturable(Exception):
    """Why this run's step cannot be a CUDA graph."""


class Rehearsal:
    """Steps that train nothing: `with Rehearsal(model, optimizer, generators) as r:` saves every
    tensor a step changes in place (the model's parameters and buffers, the optimizer's state)
    and the generators' states, and puts them all back on exit. Optimizer state that the
    rehearsal created is zeroed on exit: the state before a first step (Adam's moments and step
    count, SGD's momentum) and the same numbers from there."""

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 generators: list[torch.Generator]):
        self.model, self.optimizer = model, optimizer
        self.generators = [torch.default_generator, *generators]

    def __enter__(self) -> Rehearsal:
        with torch.no_grad():
            self.saved = [(t, t.detach().clone())
                          for t in [*self.model.parameters(), *self.model.buffers()]]
            self.saved_state = {param: {k: v.detach().clone() for k, v in state.items()
                                        if isinstance(v, torch.Tensor)}
                                for param, state in self.optimizer.state.items()}
        self.generator_states = [g.get_state() for g in self.generators]
        return self

    def drew_on_host(self) -> bool:
        """Whether the steps so far drew random numbers from the CPU's generator."""
        return not torch.equal(self.generator_states[0], torch.default_generator.get_state())

    def __exit__(self, *exc) -> None:
        # Into the tensors the optimizer holds now (those a graph captured after the rehearsal
        # reads), by parameter and name.
        with torch.no_grad():
            for tensor, copy in self.saved:
                tensor.copy_(copy)
            for param, state in self.optimizer.state.items():
                before = self.saved_state.get(param, {})
                for key, value in state.items():
                    if not isinstance(value, torch.Tensor):
                        continue
                    if key in before:
                        value.copy_(before[key])
                    else:  # made by the rehearsal: as before any step
                        value.zero_()
        for generator, state in zip(self.generators, self.generator_states, strict=True):
            generator.set_state(state)
        self.saved, self.saved_state = [], {}


class GraphedStep:
    """The run's training steps over its epochs' batches: CUDA-graph replays once `prepare()`
    captured one, else `TrainStep` eagerly. What `train_epoch` calls:
    `step(inputs, labels, index) -> (logits, loss)` on what `batches(epoch)` yields (inputs: the
    batch's images, or in graph mode the rows of its images). In graph mode the logits are the
    graph's own output, valid until the next step (enough for the accuracy the epoch sums)."""

    def __init__(self, step: TrainStep, data: DeviceData, setting: str | bool):
        self.step, self.data, self.setting = step, data, setting
        self.graph: torch.cuda.CUDAGraph | None = None
        self.prepared = False
        self._rows = self._lr = self._logits = self._loss = None

    # what train_epoch reads of a step
    @property
    def network(self):
        return self.step.network

    @property
    def device(self) -> torch.device:
        return self.step.device

    @property
    def lr(self) -> float:
        return self.step.lr

    def prepare(self, note: Callable[[str], None] = print) -> float:
        """Capture the step where the setting and the device allow it: the seconds it took (0.0
        when the step stays eager). `note(line)` says once why a step asked for stays eager;
        RunFailed where `cuda_graphs: true` cannot be honoured on a GPU."""
        if self.setting is False or self.prepared:
            return 0.0
        self.prepared = True
        asked = f"train.cuda_graphs: {str(self.setting).lower()}"
        if self.device.type != "cuda":
            where = self.device.type
            note(f"{asked}: CUDA graphs need a GPU; on the {where} the step runs eagerly")
            return 0.0
        began = time.perf_counter()
        try:
            self._capture()
        except NotCapturable as e:
            if self.setting is True:
                raise RunFailed(f"{asked}, but {e}; set cuda_graphs: auto or false") from None
            note(f"{asked}: {e}; the step runs eagerly")
            return 0.0
        torch.cuda.synchronize(self.device)
        return time.perf_counter() - began

    def batches(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The epoch's (inputs, labels): the seeded batches of `DeviceData.batches`, or in graph
        mode their rows, for the graph to gather and augment."""
        if self.graph is None:
            yield from self.data.batches(epoch)
            return
        labels = self.data.y["train"]
        for rows in self.data.batch_indices(epoch):
            yield rows, labels.index_select(0, rows)

    def __call__(self, inputs: torch.Tensor, labels: torch.Tensor, index: int):
        if self.graph is None:
            return self.step(inputs, labels, index)
        if len(inputs) != len(self._rows):  # the epoch's last, partial batch: eagerly
            return self.step(*self.data.train_batch(inputs, self.data.generator), index)
        self.step.set_lr(self.step.schedule(index))
        self._lr.fill_(self.step.lr)
        self._rows.copy_(inputs)
        self.graph.replay()
        return self._logits, self._loss.clone()  # the loss is kept for the epoch's record

    def _capture(self) -> None:
        step, data, device = self.step, self.data, self.device
        if data.size("train") < data.batch_size:
            raise NotCapturable("every batch is smaller than batch_size")
        if not hasattr(torch.cuda.CUDAGraph, "register_generator_state"):  # torch before 2.4
            raise NotCapturable(f"torch {torch.__version__} cannot give a graph the "
                                "augmentation's generator")
        rows = torch.arange(data.batch_size, device=device)
        step.network.net.train()  # what the graph replays: dropout, BatchNorm's batch statistics
        lr, eager_lr = torch.tensor(step.lr, dtype=torch.float32, device=device), step.lr
        graph = torch.cuda.CUDAGraph()

        def one_step():
            return step.update(*data.train_batch(rows, data.generator))

        rehearsal = Rehearsal(step.network.model, step.optimizer,
                              [data.generator, torch.cuda.default_generators[_index(device)]])
        try:
            with rehearsal:
                step.set_lr(lr)
                _rehearse(one_step, device)
                if rehearsal.drew_on_host():
                    raise NotCapturable(
                        "the step draws random numbers on the host (MixStyle's coin, say), which "
                        "a graph would replay unchanged"
                    )
                graph.register_generator_state(data.generator)
                # Gradients made by the graph's backward live in the graph's memory pool.
                step.optimizer.zero_grad(set_to_none=True)
                with _capturable(step.optimizer), torch.cuda.graph(graph):
                    logits, loss = one_step()
        except RuntimeError as e:
            if isinstance(e, torch.cuda.OutOfMemoryError):
                raise
            raise NotCapturable(f"its capture failed ({str(e).splitlines()[0]})") from None
        finally:
            step.set_lr(eager_lr)
        self.graph, self._rows, self._lr, self._logits, self._loss = graph, rows, lr, logits, loss


def _index(device: torch.device) -> int:
    return device.index if device.index is not None else torch.cuda.current_device()


def _rehearse(one_step, device: torch.device) -> None:
    """The rehearsal steps, on a side stream as torch's CUDA-graph guide does them."""
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(REHEARSAL_STEPS):
            one_step()
    torch.cuda.current_stream(device).wait_stream(side)


@contextmanager
def _capturable(optimizer: torch.optim.Optimizer):
    """Adam and AdamW refuse to be captured unless their groups say `capturable`; fused, as on
    the GPU, they run the same kernel either way. Set for the capture only, so that the
    checkpoint's optimizer state is an eager run's."""
    groups = [g for g in optimizer.param_groups if "capturable" in g]
    before = [g["capturable"] for g in groups]
    for g in groups:
        g["capturable"] = True
    try:
        yield
    finally:
        for g, value in zip(groups, before, strict=True):
            g["capturable"] = value
