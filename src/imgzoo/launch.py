"""The `submitit` launcher: send one training run to SLURM as a job, and wait for it.

This is the login-node side. A cluster may have hundreds of these waiting at once (one per run
of the grid), so it must stay light: it imports neither torch nor the training code (only the
pickled `imgzoo.slurm_job.TrainingJob` crosses over, and the job imports the training itself),
uses about 30 MB, and asks SLURM for the job's state at most every `slurm.poll_interval_s`.

- Job name `imgzoo:{dataset}:{experiment}:s{seed}`; submitit's files and the job's stdout/stderr
  go to `{slurm.log_dir}/{dataset}/{experiment}/seed{seed}/{job id}/`.
- The run's `resources` (partition, gpus, cpus, mem_gb, time_min, account, qos, constraint,
  extra_sbatch) become the job's sbatch options.
- A job that fails, is cancelled, times out or runs out of memory raises `RunFailed` with its id,
  its final state (sacct) and the last lines of its log.
- SIGINT, SIGTERM or SIGHUP while waiting cancel the job (`scancel`) before this process exits.
"""

from __future__ import annotations

import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from imgzoo.errors import ConfigError, DataError, RunFailed

# sacct/squeue states after which a job will not run again.
FINAL_STATES = {
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "OUT_OF_MEMORY",
    "NODE_FAIL",
    "BOOT_FAIL",
    "DEADLINE",
    "PREEMPTED",  # final only when the job is no longer queued (see _Watcher.poll)
    "REVOKED",
    "SPECIAL_EXIT",
}
SETTINGS_DEFAULTS = {"poll_interval_s": 10, "max_requeues": 3, "log_dir": "results/logs/slurm"}


def job_name(spec: dict) -> str:
    return f"imgzoo:{spec['dataset']}:{spec['experiment']}:s{spec['seed']}"


def sbatch_flags(items: list[str]) -> dict:
    """`resources.extra_sbatch` (["--exclusive", "--nodelist=n1", "--mail-type END"]) as
    submitit's `slurm_additional_parameters` ({"exclusive": True, "nodelist": "n1", ...})."""
    flags = {}
    for item in items:
        text = str(item).strip()
        if not text.startswith("--") or len(text) < 3:
            raise ConfigError(
                f"config 'resources.extra_sbatch': '{item}' is not a long sbatch option; write "
                "it as --name or --name=value (e.g. --exclusive, --nodelist=node1)"
            )
        key, sep, value = text[2:].partition("=")
        if not sep and " " in key:
            key, value = key.split(None, 1)
            sep = "="
        flags[key] = value if sep else True
    return flags


def submitit_parameters(spec: dict) -> dict:
    """The run's resources as `AutoExecutor.update_parameters` keywords."""
    from imgzoo.config import RESOURCE_DEFAULTS

    res = {**RESOURCE_DEFAULTS, **spec.get("resources", {})}
    params = {
        "name": job_name(spec),
        "timeout_min": int(res["time_min"]),
        "mem_gb": res["mem_gb"],
        "cpus_per_task": int(res["cpus"]),
        "nodes": 1,
        "tasks_per_node": 1,
        # SLURM may requeue the job itself too (node failure); the run resumes either way.
        "slurm_additional_parameters": {"requeue": True, **sbatch_flags(res["extra_sbatch"])},
    }
    if res["gpus"]:
        params["gpus_per_node"] = int(res["gpus"])
    for key in ("partition", "account", "qos", "constraint"):
        if res.get(key):
            params[f"slurm_{key}"] = res[key]
    return params


def run_on_slurm(spec, data_path, out_dir, slurm_settings=None, threads=None) -> int:
    """Submit the run as one SLURM job and wait until it ends; 0 on success, else RunFailed.

    `threads` is what the job gives torch (the rule's own `threads`, so that the numbers equal a
    local run: CPU results depend on the thread count); None means the job's `cpus`."""
    import submitit
    from submitit.core.utils import FailedJobError

    from imgzoo.slurm_job import TrainingJob

    settings = {**SETTINGS_DEFAULTS, **(slurm_settings or {})}
    data_path, out_dir = Path(data_path).absolute(), Path(out_dir).absolute()
    if not data_path.is_file():
        raise DataError(f"{data_path}: prepared dataset missing (run `imgzoo prepare` first)")
    out_dir.mkdir(parents=True, exist_ok=True)
    folder = (
        Path(settings["log_dir"]).absolute()
        / spec["dataset"]
        / spec["experiment"]
        / f"seed{spec['seed']}"
        / "%j"
    )
    if threads is None:
        threads = int(submitit_parameters(spec)["cpus_per_task"])
    try:
        executor = submitit.AutoExecutor(
            folder=folder, cluster="slurm", slurm_max_num_timeout=int(settings["max_requeues"])
        )
    except RuntimeError as e:  # no srun on PATH
        raise RunFailed(f"cannot submit to SLURM from here ({e}); use launcher: local") from None
    executor.update_parameters(**submitit_parameters(spec))
    callable_ = TrainingJob(spec, str(data_path), str(out_dir), threads)
    try:
        with submitit.helpers.clean_env():  # a head job's SLURM_* must not leak into the run
            job = executor.submit(callable_)
    except FailedJobError as e:  # sbatch said no (its stderr is the message)
        lines = [ln for ln in str(e).splitlines() if ln.strip()]
        raise RunFailed(
            f"sbatch refused {job_name(spec)}: {lines[-1] if lines else 'no reason given'} "
            "(check the experiment's resources: partition, gpus, mem_gb, time_min, account)"
        ) from None
    paths = job.paths
    _say(
        f"submitted SLURM job {job.job_id} ({job_name(spec)}); logs: {paths.stdout} and "
        f"{paths.stderr.name}"
    )
    watcher = _Watcher(job.job_id, paths, float(settings["poll_interval_s"]))
    return watcher.wait(spec, out_dir)


def _say(message: str) -> None:
    print(f"imgzoo: {message}", file=sys.stderr, flush=True)


class _Stop(Exception):
    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _raise_stop(signum, frame):
    raise _Stop(signum)


class _Watcher:
    """Polls one job: its result file (written by submitit in the job) and its state (sacct, or
    squeue where accounting does not answer), at most once per `poll_interval_s`."""

    def __init__(self, job_id: str, paths, poll_interval_s: float):
        self.job_id = job_id
        self.paths = paths
        self.interval = max(1.0, poll_interval_s)
        self.state = "SUBMITTED"
        self.unknown_polls = 0

    # ---- asking SLURM --------------------------------------------------------------------------

    def _sacct(self) -> tuple[str, str] | None:
        """(state, exit code) of the job's newest record, or None where sacct cannot tell."""
        try:
            out = subprocess.run(
                ["sacct", "-n", "-P", "-X", "-j", self.job_id, "-o", "State,ExitCode"],
                capture_output=True,
                text=True,
                timeout=60,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        lines = [ln for ln in out.stdout.splitlines() if ln.strip()]
        if out.returncode != 0 or not lines:
            return None
        state, _, exit_code = lines[-1].partition("|")
        return state.split()[0], exit_code  # "CANCELLED by 0" -> CANCELLED

    def _squeue(self) -> str | None:
        """The job's state while slurmctld still knows it, "" once it is gone, None on error."""
        try:
            out = subprocess.run(
                ["squeue", "-h", "-j", self.job_id, "-o", "%T"],
                capture_output=True,
                text=True,
                timeout=60,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        if out.returncode != 0:
            return "" if "Invalid job id" in out.stderr else None
        return out.stdout.strip()

    def poll(self) -> tuple[str, str] | None:
        """One look at SLURM: (final state, exit code) once the job is over, else None."""
        info = self._sacct()
        queued = None
        if info is None or info[0] in ("PREEMPTED",):
            queued = self._squeue()
            if info is None and queued:
                info = (queued, "")
        if info is None:  # neither sacct nor squeue know it: gone, or SLURM is unreachable
            self.unknown_polls += 1
            if self.unknown_polls >= 3 and queued == "":
                return ("UNKNOWN", "")
            return None
        self.unknown_polls = 0
        state, exit_code = info
        if state != self.state:
            _say(f"SLURM job {self.job_id}: {state}")
            self.state = state
        if state == "PREEMPTED" and queued:
            return None  # preempted and requeued: it will run again
        return (state, exit_code) if state in FINAL_STATES else None

    # ---- waiting ---------------------------------------------------------------------------------

    def wait(self, spec: dict, out_dir: Path) -> int:
        stop_signals = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]
        previous = {s: signal.signal(s, _raise_stop) for s in stop_signals}
        finished = False
        try:
            final = None
            while True:
                if self.paths.result_pickle.exists():
                    break
                final = self.poll()
                if final is not None:
                    self._wait_for_result(final[0])
                    break
                time.sleep(self.interval)
            finished = True
        except _Stop as stop:
            name = signal.Signals(stop.signum).name
            self.cancel()
            finished = True
            _say(f"got {name} while waiting: cancelled SLURM job {self.job_id}")
            if stop.signum == signal.SIGINT:
                raise KeyboardInterrupt from None
            raise SystemExit(128 + stop.signum) from None
        finally:
            if not finished:  # anything unexpected while waiting: leave no orphan behind
                self.cancel()
            for s, handler in previous.items():
                signal.signal(s, handler)
        return self._outcome(spec, out_dir, final)

    def _wait_for_result(self, state: str) -> None:
        # A completed job wrote its result file; a shared file system may show it a bit later.
        deadline = time.monotonic() + (min(self.interval, 15) if state == "COMPLETED" else 2)
        while not self.paths.result_pickle.exists() and time.monotonic() < deadline:
            time.sleep(0.5)

    def cancel(self) -> None:
        subprocess.run(["scancel", self.job_id], capture_output=True, timeout=60)

    def _outcome(self, spec: dict, out_dir: Path, final) -> int:
        from submitit.core.utils import pickle_load

        outcome, value = None, None
        if self.paths.result_pickle.exists():
            try:
                outcome, value = pickle_load(self.paths.result_pickle)
            except Exception:  # a half-written or foreign file: judge by the state instead
                outcome = None
        if outcome == "success":
            metrics = out_dir / "metrics.h5"
            if not metrics.exists():
                raise RunFailed(self._message("COMPLETED", "", f"but {metrics} is missing"))
            summary = value if isinstance(value, dict) else {}
            acc = summary.get("final_test_acc")
            _say(
                f"SLURM job {self.job_id} COMPLETED: {summary.get('status', 'done')} after "
                f"{summary.get('epochs_completed', '?')} epochs on {summary.get('device', '?')}"
                + (f", final test acc {acc:.4f}" if acc is not None else "")
                + f" -> {metrics}"
            )
            return 0
        # Failed: give sacct a moment to record the final state (the job may still be ending).
        state, exit_code = final or (None, "")
        for _ in range(5):
            if state in FINAL_STATES and state != "PREEMPTED":
                break
            time.sleep(1)
            info = self._sacct()
            if info is not None:
                state, exit_code = info
        return self._fail(state or self.state, exit_code, value if outcome == "error" else None)

    def _fail(self, state: str, exit_code: str, traceback: str | None):
        raise RunFailed(self._message(state, exit_code, self._log_tail(state, traceback)))

    def _message(self, state: str, exit_code: str, detail: str) -> str:
        code = f" (exit {exit_code})" if exit_code and exit_code != "0:0" else ""
        return (
            f"SLURM job {self.job_id} {state}{code}: {detail} "
            f"[logs: {shlex.quote(str(self.paths.stderr))}]"
        )

    def _log_lines(self) -> list[str]:
        """The job's stderr, else its stdout, without submitit's and srun's bookkeeping."""
        noise = ("submitit ", "srun: error: ", "srun: launch/", "srun: Job step aborted")
        for path in (self.paths.stderr, self.paths.stdout):
            try:
                text = path.read_text(errors="replace")
            except OSError:
                continue
            lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
            lines = [ln for ln in lines if not ln.startswith(noise)]
            if lines:
                return lines
        return []

    def _log_tail(self, state: str, traceback: str | None, n: int = 3) -> str:
        """What went wrong, in a few lines: the Python exception and what follows it where the
        job raised one; else what slurmstepd said (cancelled, time limit, out of memory); else
        the last lines of the log; else the traceback submitit sent back."""
        # Killed from outside: slurmstepd's notice can reach the log a moment after the state.
        tries = 1 if state in ("FAILED", "COMPLETED") else 6
        for attempt in range(tries):
            lines = self._log_lines()
            errors = [i for i, ln in enumerate(lines) if _EXCEPTION_LINE.match(ln)]
            if errors:
                return _one_line(lines[errors[-1] :][:n])
            notices = [ln for ln in lines if ln.startswith("slurmstepd")]
            if notices:
                return _one_line(notices[-2:])  # the job's and the step's
            if attempt < tries - 1:
                time.sleep(0.5)
        if lines:
            return _one_line(lines[-n:])
        if traceback:
            return _one_line(traceback.strip().splitlines()[-n:])
        return "no log lines"


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b")


def _one_line(lines: list[str], limit: int = 500) -> str:
    text = " | ".join(lines)
    return text if len(text) <= limit else "..." + text[-limit:]
