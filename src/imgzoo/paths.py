"""Where a study's files live: the one home of every path pattern in the results tree.

Each study writes under its own folder, `results/<study name>/`, so studies that share a checkout
never overwrite each other's runs, tables, figures or report. Every method returns a concrete
path when given values and a Snakemake pattern (with `{dataset}`, `{experiment}`, `{seed}`
wildcards) when called without them, so the rules and the code cannot disagree. Imports nothing
heavy: the Snakefile and the login node use it.
"""

from __future__ import annotations

from dataclasses import dataclass

RESULTS = "results"
# The files of one run folder.
METRICS = "metrics.h5"  # the run log: the train rule's output, complete once it exists
CHECKPOINT = "checkpoint.pt"  # the last finished epoch, while the run is unfinished
MODEL = "model.pt"  # the final weights
BEST_MODEL = "model_best.pt"  # the weights of the best-validation epoch (or evaluation)
# the best weights of the evaluation after step {step}, inside the epoch under way, until the
# epoch's checkpoint names it the best (train.eval_every_steps)
BEST_MODEL_PENDING = "model_best.step{step}.pt"
PROGRESS = "progress.json"  # the run's state and history so far, rewritten every epoch


@dataclass(frozen=True)
class Layout:
    """The results tree of one study, rooted at `results/<study name>`."""

    study: str
    # a part of the study's folder laid out the same way (`partial`, `by_hand`)
    part: str = ""

    @property
    def root(self) -> str:
        return "/".join(filter(None, [RESULTS, self.study, self.part]))

    @property
    def partial(self) -> Layout:
        return Layout(self.study, "partial")

    @property
    def by_hand(self) -> Layout:
        """Runs made by hand with settings of their own (`imgzoo train ... KEY=VALUE`): apart,
        so they never pass for the study's runs."""
        return Layout(self.study, "by-hand")

    def data(self, dataset="{dataset}") -> str:
        """A prepared dataset (per study: preparation options differ between studies)."""
        return f"{self.root}/data/{dataset}.h5"

    def run_dir(self, dataset="{dataset}", experiment="{experiment}", seed="{seed}") -> str:
        return f"{self.root}/runs/{dataset}/{experiment}/seed{seed}"

    def run_log(self, dataset="{dataset}", experiment="{experiment}", seed="{seed}") -> str:
        return f"{self.run_dir(dataset, experiment, seed)}/{METRICS}"

    @property
    def tables(self) -> str:
        return f"{self.root}/tables"

    def table(self, name: str, ext: str = "csv") -> str:
        return f"{self.tables}/{name}.{ext}"

    def curves(self, dataset="{dataset}") -> str:
        return f"{self.root}/figures/{dataset}/curves.png"

    def accuracy_plot(self, dataset="{dataset}") -> str:
        """Every experiment's test accuracy at the best-validation epoch, seed by seed."""
        return f"{self.root}/figures/{dataset}/accuracy.png"

    def weight_grid(self, dataset="{dataset}", experiment="{experiment}", seed="{seed}") -> str:
        return f"{self.root}/figures/{dataset}/{experiment}/seed{seed}/first_layer.png"

    def sweep_plot(self, dataset="{dataset}", sweep="{sweep}") -> str:
        return f"{self.root}/figures/{dataset}/sweep-{sweep}.png"

    def log(self, *parts: str) -> str:
        """A job's log: `log("aggregate", "tables.log")`."""
        return "/".join([self.root, "logs", *parts])

    def train_log(self, dataset="{dataset}", experiment="{experiment}", seed="{seed}") -> str:
        """The train rule's log of a run (its job's id, states and outcome under SLURM)."""
        return self.log("train", dataset, experiment, f"seed{seed}.log")

    @property
    def report(self) -> str:
        return f"{self.root}/report.html"

    @property
    def compile_cache(self) -> str:
        """torch.compile's kernels, shared by the study's runs and their requeued attempts."""
        return f"{self.root}/cache/torch-compile"
