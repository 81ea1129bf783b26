"""The callable that submitit runs inside a SLURM job: one training run, checkpointable.

Pickled on the login node and unpickled in the job, so importing this module must stay light
(no torch): the training is imported inside `__call__`, in the job only.

Time limits and preemption: submitit asks SLURM for its warning signal (USR2, `signal_delay_s`
before the limit). While the run trains, that signal only raises a flag; the training sees it
between two steps and raises `imgzoo.train.Preempted`; then submitit's own handler runs, which
calls `checkpoint()` (requeue the same callable) and `scontrol requeue`. The requeued job starts
the same run again and `train` resumes from the epoch checkpoint on disk (`checkpoint.pt`), so the
run ends with exactly the numbers of an uninterrupted one. submitit's `slurm_max_num_timeout`
bounds how often this may happen.
"""

from __future__ import annotations

import os
import signal
import sys

import submitit


def preempt_signal() -> int:
    """The signal submitit treats as "time limit / preemption near" (USR2 unless overridden)."""
    return getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"))


class TrainingJob(submitit.helpers.Checkpointable):
    """`train(spec, data_path, out_dir, threads=threads)` in a SLURM job; returns a small summary
    (plain Python values, so the login node unpickles it without torch)."""

    def __init__(
        self,
        spec: dict,
        data_path: str,
        out_dir: str,
        threads: int | None = None,
        compile_cache: str | None = None,
    ):
        self.spec = spec
        self.data_path = str(data_path)
        self.out_dir = str(out_dir)
        self.threads = threads
        self.compile_cache = compile_cache

    def __call__(self) -> dict:
        stop = {"asked": False}
        sig = preempt_signal()
        submitit_handler = signal.getsignal(sig)  # checkpoint + requeue + exit (submitit's)

        def ask_to_stop(signum, frame):
            stop["asked"] = True
            print(
                f"imgzoo: got {signal.Signals(signum).name}: stopping after this step to requeue",
                file=sys.stderr,
                flush=True,
            )

        signal.signal(sig, ask_to_stop)
        from imgzoo.progress import Progress
        from imgzoo.train import Preempted, train

        spec = self.spec
        progress = Progress(
            spec["train"]["epochs"],
            label=f"[{spec['dataset']}/{spec['experiment']}/s{spec['seed']}]",
        )
        try:
            log = train(
                spec,
                self.data_path,
                self.out_dir,
                threads=self.threads,
                stop_flag=lambda: stop["asked"],
                progress=progress,
                compile_cache=self.compile_cache,
            )
        except Preempted:
            signal.signal(sig, submitit_handler)
            if not callable(submitit_handler):
                raise
            # The last finished epoch is on disk: let submitit checkpoint this callable and
            # requeue the job (it exits this process), or fail it after too many timeouts.
            submitit_handler(sig, None)
            raise
        finally:
            signal.signal(sig, submitit_handler)
        epochs = log.epochs
        return {
            "status": str(log.attrs["status"]),
            "epochs_completed": int(len(epochs["epoch"])),
            "final_test_acc": float(epochs["test_acc"][-1]) if len(epochs["epoch"]) else None,
            "device": str(log.attrs["device"]),
        }
