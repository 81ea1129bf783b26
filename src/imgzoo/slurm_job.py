"""The callables that submitit runs inside a SLURM job: one training run, or a pack of runs that
share the job's GPU, each in a process of its own. Both are checkpointable.

Pickled on the login node and unpickled in the job, so importing this module must stay light
(no torch): the training is imported where a run starts, in the job only.

Time limits and preemption: submitit asks SLURM for its warning signal (USR2, `signal_delay_s`
before the limit). While a run trains, that signal only raises a flag; the training sees it
between two steps and raises `imgzoo.train.Preempted`; then submitit's own handler runs, which
calls `checkpoint()` (requeue the same callable) and `scontrol requeue`. The requeued job starts
the same run again and `train` resumes from the epoch checkpoint on disk (`checkpoint.pt`), so the
run ends with exactly the numbers of an uninterrupted one. submitit's `slurm_max_num_timeout`
bounds how often this may happen.

A pack (`PackJob`) starts one process per run (`python -m imgzoo.slurm_job`): each sets its own
threads and determinism (`imgzoo.training.device.configure` is process-wide), trains, and writes
its own result file, so that the login node judges every run on its own and a run that fails
leaves its pack-mates training. The pack passes the time-limit signal on to every run, waits for
all of them, and requeues the job once if any stopped for it; the requeued job starts only the
runs that have no result yet, and each resumes from its own checkpoint. With `resources.mps` the
pack starts NVIDIA's Multi-Process Service for its processes (`imgzoo.mps`: a daemon of the job's
own, stopped when they have ended), where the node has it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import traceback
from dataclasses import asdict

import submitit
from submitit.core.utils import UncompletedJobError, cloudpickle_dump

from imgzoo import mps
from imgzoo.slurm_runs import TrainingRun, run_files

# A run's process exits with this when it stopped for the time-limit signal (sysexits' TEMPFAIL):
# its last finished epoch is on disk and it wants the requeue.
PREEMPTED_EXIT = 75


def preempt_signal() -> int:
    """The signal submitit treats as "time limit / preemption near" (USR2 unless overridden)."""
    return getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"))


class StopFlag:
    """Raised by the time-limit signal; asked by the training before every step."""

    def __init__(self, label: str):
        self.label = label
        self.asked = False

    def __call__(self) -> bool:
        return self.asked

    def ask(self, signum, frame) -> None:
        self.asked = True
        print(
            f"imgzoo: {self.label}got {signal.Signals(signum).name}: stopping after this step "
            "to requeue",
            file=sys.stderr,
            flush=True,
        )


def train_run(run: TrainingRun, stop_flag) -> dict:
    """Train (or resume) one run in this process; a small summary of how it ended (plain Python
    values, so the login node unpickles it without torch). Raises `imgzoo.train.Preempted` once
    `stop_flag()` is true."""
    from imgzoo.progress import Progress
    from imgzoo.train import train

    spec = run.run_spec
    progress = Progress(spec.train["epochs"], label=f"[{spec.id.name}]")
    log = train(
        spec,
        run.data_path,
        run.out_dir,
        threads=run.threads,
        stop_flag=stop_flag,
        progress=progress,
        compile_cache=run.compile_cache,
        gpu_mem_fraction=run.gpu_mem_fraction,
    )
    epochs = log.epochs
    return {
        "status": str(log.attrs["status"]),
        "epochs_completed": int(len(epochs["epoch"])),
        "final_test_acc": float(epochs["test_acc"][-1]) if len(epochs["epoch"]) else None,
        "device": str(log.attrs["device"]),
    }


class TrainingJob(submitit.helpers.Checkpointable):
    """One run alone in its SLURM job, in the job's own process; submitit writes its result."""

    def __init__(self, run: TrainingRun):
        self.run = run

    def __call__(self) -> dict:
        from imgzoo.train import Preempted

        sig = preempt_signal()
        submitit_handler = signal.getsignal(sig)  # checkpoint + requeue + exit (submitit's)
        stop = StopFlag("")
        signal.signal(sig, stop.ask)
        try:
            return train_run(self.run, stop)
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


class PackJob(submitit.helpers.Checkpointable):
    """Several runs side by side in one SLURM job (on its one GPU), one process each."""

    def __init__(self, runs: list[TrainingRun]):
        self.runs = runs

    def __call__(self) -> dict:
        job_id = submitit.JobEnvironment().job_id
        sig = preempt_signal()
        # submitit's: checkpoint + requeue + exit on `sig`; let SIGTERM pass (SLURM kills soon).
        submitit_handlers = {s: signal.getsignal(s) for s in (sig, signal.SIGTERM)}
        stop, ending = StopFlag("pack: "), []
        processes: dict[int, subprocess.Popen] = {}

        def pass_on(signum, frame):
            stop.ask(signum, frame)
            for process in processes.values():
                if process.poll() is None:
                    process.send_signal(signum)

        def end(signum, frame):
            ending.append(signum)
            if callable(submitit_handlers[signum]):
                submitit_handlers[signum](signum, frame)

        signal.signal(sig, pass_on)
        signal.signal(signal.SIGTERM, end)
        daemon = self.start_mps()
        try:
            for index, run in enumerate(self.runs):
                if not stop() and not self.result(run, job_id).exists():  # else over, or requeued
                    processes[index] = start_run(run, job_id, sig, daemon.env if daemon else None)
            for process in processes.values():
                process.wait()
        finally:
            for signum, handler in submitit_handlers.items():
                signal.signal(signum, handler)
            if daemon is not None:
                daemon.stop()
        if ending:  # cancelled or out of time: the job's state tells each unfinished run's fate
            return self.outcomes(job_id)
        for index, process in processes.items():
            result = self.result(self.runs[index], job_id)
            if process.returncode != PREEMPTED_EXIT and not result.exists():
                write_result(result, ("error", ended_without_result(process.returncode)))
        waiting = [run for run in self.runs if not self.result(run, job_id).exists()]
        if waiting:  # stopped for the time limit: each resumes from its checkpoint after requeue
            print(
                f"imgzoo: pack: {len(waiting)} of {len(self.runs)} runs stopped for the time "
                "limit: requeueing the job",
                file=sys.stderr,
                flush=True,
            )
            try:
                requeue(sig, submitit_handlers[sig])  # exits this process
            except UncompletedJobError as e:  # timed out too many times
                for run in waiting:
                    write_result(self.result(run, job_id), ("error", str(e)))
                raise
        return self.outcomes(job_id)

    def start_mps(self) -> mps.Daemon | None:
        """MPS for the pack's processes where its runs ask for it and the node has it; a line in
        the job's log either way."""
        if len(self.runs) < 2 or not self.runs[0].mps:
            return None
        daemon, why = mps.start()
        said = "MPS started for the runs" if daemon else f"no MPS ({why}): the runs take turns"
        print(f"imgzoo: pack: {said}", file=sys.stderr, flush=True)
        return daemon

    @staticmethod
    def result(run: TrainingRun, job_id: str):
        return run_files(run.log_folder, job_id).result

    def outcomes(self, job_id: str) -> dict:
        return {run.name: outcome(self.result(run, job_id)) for run in self.runs}


def requeue(sig: int, submitit_handler) -> None:
    """submitit's handler of the time-limit signal: checkpoint the callable and `scontrol
    requeue` the job (then exit), or raise UncompletedJobError after too many timeouts."""
    if not callable(submitit_handler):
        raise RuntimeError("runs stopped for the time limit, and submitit cannot requeue the job")
    submitit_handler(sig, None)


def start_run(run: TrainingRun, job_id: str, sig: int, env: dict | None = None) -> subprocess.Popen:
    """One run of a pack in a process of its own, its output in the run's own log folder (appended
    to by a requeued attempt, as submitit's logs are); `env`: added to its environment."""
    files = run_files(run.log_folder, job_id)
    files.result.parent.mkdir(parents=True, exist_ok=True)
    with open(files.stdout, "a") as out, open(files.stderr, "a") as err:
        return subprocess.Popen(
            [sys.executable, "-u", "-m", "imgzoo.slurm_job", json.dumps(asdict(run))],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env={**os.environ, **env} if env else None,
            # The signal waits, blocked, until the process has its handler (main() unblocks it):
            # arriving during the imports, it would kill the process instead.
            preexec_fn=lambda: signal.pthread_sigmask(signal.SIG_BLOCK, {sig}),
        )


def write_result(path, outcome: tuple[str, object]) -> None:
    """A run's result file, in submitit's format, complete or absent (written, then renamed)."""
    temporary = path.with_name(path.name + ".tmp")
    cloudpickle_dump(outcome, temporary)
    os.replace(temporary, path)


def ended_without_result(returncode: int) -> str:
    if returncode == -signal.SIGKILL:
        how = "was killed by SIGKILL (out of memory on the node?)"
    elif returncode < 0:
        how = f"was killed by {signal.Signals(-returncode).name}"
    else:
        how = f"exited with code {returncode}"
    return f"the run's process {how} before it wrote its result"


def outcome(result) -> str:
    from submitit.core.utils import pickle_load

    try:
        return pickle_load(result)[0]
    except Exception:  # missing, half-written or foreign
        return "none"


def main(argv: list[str]) -> int:
    """One run of a pack, in its own process: `python -m imgzoo.slurm_job '<TrainingRun JSON>'`.
    Writes the run's result file (success or the traceback); exits PREEMPTED_EXIT when it stopped
    for the time-limit signal."""
    sig = preempt_signal()
    stop = StopFlag("")
    signal.signal(sig, stop.ask)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {sig})
    run = TrainingRun(**json.loads(argv[0]))
    result = run_files(run.log_folder, submitit.JobEnvironment().job_id).result
    from imgzoo.train import Preempted

    try:
        summary = train_run(run, stop)
    except Preempted:
        return PREEMPTED_EXIT
    except Exception:
        traceback.print_exc()
        write_result(result, ("error", traceback.format_exc()))
        return 1
    write_result(result, ("success", summary))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
