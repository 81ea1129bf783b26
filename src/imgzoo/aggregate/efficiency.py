"""How well the runs used what their SLURM jobs asked for: `efficiency.{csv,md,html}`.

Per run: the time asked (`time_min`) and used, the memory asked and the job's peak (sacct's
largest MaxRSS of the job's steps), the CPU efficiency (TotalCPU / (Elapsed x AllocCPUS)), and on
a GPU the mean utilisation and the peak memory of the GPU (the run log's `gpu` samples). SLURM's
figures come from `sacct`, asked about every job id the logs name at once
(`imgzoo.slurm_usage`); a run made locally shows what applies to it (its wall time, its GPU). A
packed run shows its job's figures, which its pack-mates share (`pack`).

Per experiment, a line of advice where the figures make it clear: a time limit, memory or CPUs
far above what the runs used (accurate requests queue sooner: backfill), or a GPU mostly idle
whose memory would hold more runs side by side (`pack`).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from imgzoo import slurm_usage
from imgzoo.aggregate import read_logs
from imgzoo.aggregate.table_files import write_table

COLUMNS = (
    "dataset",
    "experiment",
    "seed",
    "where",
    "slurm_job_ids",
    "state",
    "pack",
    "attempts",
    "time_asked_min",
    "time_used_min",
    "longest_attempt_min",
    "mem_asked_gb",
    "mem_peak_gb",
    "cpus",
    "cpu_efficiency",
    "gpus",
    "gpu_samples",
    "gpu_utilization",
    "gpu_mem_peak_gb",
    "gpu_mem_total_gb",
    "note",
)
_TEXT_COLUMNS = ("dataset", "experiment", "where", "slurm_job_ids", "jobs", "state", "note")
# Advice only where it is clear: a request at least ADVISE_BELOW times what was used at most,
# suggested with a margin (time x2, memory x1.5, CPUs x1.5), rounded up.
ADVISE_BELOW = 0.5
GPU_BUSY = 0.5  # a GPU busier than this on average gets no packing advice
GPU_MEMORY_USABLE = 0.9  # of the GPU's memory, what packed runs may fill
_NOTE = (
    "Per run: the time its SLURM job asked for and used (every attempt; the longest attempt is "
    "what the time limit bounds), the memory it asked for and its peak (sacct's MaxRSS of the "
    "job's steps), CPU efficiency (TotalCPU / (Elapsed x AllocCPUS)), and on a GPU the mean "
    "utilisation and the peak memory of the GPU, sampled in the job a few times a minute. A "
    "packed run shows its job's figures (its pack-mates share them). Runs made locally show their "
    "wall time and GPU only."
)


def efficiency_frame(logs, usage: dict | None) -> pd.DataFrame:
    """One row per run log (`usage`: imgzoo.slurm_usage.job_usage of their jobs; None where
    sacct did not answer)."""
    return pd.DataFrame([run_row(log, usage) for log in logs], columns=list(COLUMNS))


def run_row(log, usage: dict | None) -> dict:
    attrs, spec = log.attrs, log.spec
    resources = spec.get("resources") or {}
    job_ids = [j for j in str(attrs.get("slurm_job_ids") or "").split(",") if j]
    row = dict.fromkeys(COLUMNS, np.nan)
    row.update(
        dataset=attrs["dataset"],
        experiment=attrs["experiment"],
        seed=int(attrs["seed"]),
        where="slurm" if job_ids else "local",
        slurm_job_ids=" ".join(job_ids),
        state="",
        note="",
    )
    row.update(_gpu_columns(log.gpu, resources, local=not job_ids, device=str(attrs.get("device"))))
    if not job_ids:
        row["time_used_min"] = float(attrs.get("wall_time_s", np.nan)) / 60
        row["note"] = "made locally: no request"
        return row
    pack = int(resources.get("pack") or 1)
    row.update(pack=pack, time_asked_min=_number(resources.get("time_min")))
    row["mem_asked_gb"] = _number(resources.get("mem_gb")) * pack
    if usage is None:
        row["note"] = "sacct did not answer: SLURM's figures are missing"
        return row
    jobs = [usage[j] for j in job_ids if j in usage]
    missing = [j for j in job_ids if j not in usage]
    if missing:
        row["note"] = f"sacct does not know job {', '.join(missing)}"
    if not jobs:
        return row
    row.update(_job_columns(jobs))
    return row


def _number(value) -> float:
    return float(value) if value is not None else np.nan


def _job_columns(jobs: list) -> dict:
    """The SLURM figures of a run's jobs (a resubmitted run has several), every attempt."""
    elapsed = sum(j.elapsed_s for j in jobs)
    cpu_time = sum(j.elapsed_s * j.cpus for j in jobs)
    peaks = [j.max_rss_mb for j in jobs if j.max_rss_mb is not None]
    columns = {
        "state": jobs[-1].state,
        "attempts": sum(j.attempts for j in jobs),
        "time_used_min": elapsed / 60,
        "longest_attempt_min": max(j.longest_attempt_s for j in jobs) / 60,
        "mem_peak_gb": max(peaks) / 1024 if peaks else np.nan,
        "cpus": jobs[-1].cpus,
        "cpu_efficiency": sum(j.cpu_s for j in jobs) / cpu_time if cpu_time > 0 else np.nan,
    }
    if jobs[-1].time_limit_min is not None:
        columns["time_asked_min"] = jobs[-1].time_limit_min
    if jobs[-1].req_mem_mb is not None:
        columns["mem_asked_gb"] = jobs[-1].req_mem_mb / 1024
    return columns


def _gpu_columns(gpu: dict, resources: dict, *, local: bool, device: str) -> dict:
    samples = len(gpu.get("time_s", ()))
    gpus = (1 if device.startswith("cuda") else 0) if local else int(resources.get("gpus") or 0)
    if not samples:
        return {"gpus": gpus, "gpu_samples": 0}
    total = float(gpu.get("memory_total_mb", np.nan))
    return {
        "gpus": gpus,
        "gpu_samples": samples,
        "gpu_utilization": float(np.nanmean(gpu["utilization"])) / 100,
        "gpu_mem_peak_gb": float(np.nanmax(gpu["memory_mb"])) / 1024,
        "gpu_mem_total_gb": total / 1024,
    }


# ---- advice ------------------------------------------------------------------------------------


def advice(frame: pd.DataFrame) -> dict[str, list[str]]:
    """Per experiment, what its figures make clear (experiments in the table's order)."""
    lines = {}
    for experiment, runs in frame.groupby("experiment", sort=False):
        said = [
            text
            for text in (
                _time_advice(runs),
                _memory_advice(runs),
                _cpu_advice(runs),
                _gpu_advice(runs),
            )
            if text
        ]
        if said:
            lines[str(experiment)] = said
    return lines


def _on_slurm(runs: pd.DataFrame, *columns: str) -> pd.DataFrame:
    mine = runs[runs["where"] == "slurm"]
    return mine.dropna(subset=list(columns)) if len(mine) else mine


def _time_advice(runs: pd.DataFrame) -> str | None:
    done = _on_slurm(runs, "longest_attempt_min", "time_asked_min")
    # requeued or timed-out runs needed their limit: no advice from them
    if not len(done) or (done["attempts"] > 1).any() or (done["state"] != "COMPLETED").any():
        return None
    used, asked = done["longest_attempt_min"].max(), done["time_asked_min"].max()
    suggested = max(5, 5 * math.ceil(2 * used / 5))
    if suggested > ADVISE_BELOW * asked:
        return None
    return (
        f"used at most {math.ceil(used)} of {asked:.0f} minutes: time_min {suggested} would "
        "queue sooner"
    )


def _memory_advice(runs: pd.DataFrame) -> str | None:
    done = _on_slurm(runs, "mem_peak_gb", "mem_asked_gb")
    if not len(done):
        return None
    peak, asked, pack = done["mem_peak_gb"].max(), done["mem_asked_gb"].max(), done["pack"].max()
    suggested = max(1, math.ceil(1.5 * peak / pack))  # per run, as mem_gb is
    if suggested * pack > ADVISE_BELOW * asked:
        return None
    return f"peak memory {peak:.1f} of {asked:.0f} GB: mem_gb {suggested} would do"


def _cpu_advice(runs: pd.DataFrame) -> str | None:
    done = _on_slurm(runs, "cpu_efficiency", "cpus")
    if not len(done):
        return None
    pack = done["pack"].max()
    cpus = done["cpus"].max() / pack  # per run, as cpus is
    efficiency = done["cpu_efficiency"].mean()
    suggested = max(1, math.ceil(1.5 * efficiency * cpus))
    if cpus <= 1 or suggested > ADVISE_BELOW * cpus:
        return None
    return f"CPUs busy {efficiency:.0%} of the time: cpus {suggested} would do"


def _gpu_advice(runs: pd.DataFrame) -> str | None:
    sampled = runs.dropna(subset=["gpu_utilization", "gpu_mem_peak_gb", "gpu_mem_total_gb"])
    if not len(sampled):
        return None
    busy = sampled["gpu_utilization"].mean()
    pack = int(sampled["pack"].fillna(1).max())
    per_run_gb = sampled["gpu_mem_peak_gb"].max() / pack
    total = sampled["gpu_mem_total_gb"].min()
    if busy > GPU_BUSY or per_run_gb <= 0:
        return None
    fits = math.floor(GPU_MEMORY_USABLE * total / per_run_gb)
    keeps_busy = math.floor(pack / busy) if busy > 0 else fits
    suggested = min(fits, keeps_busy)
    if suggested <= pack:
        return None
    return f"GPU busy {busy:.0%} of the time: pack: {suggested} would fit in memory"


# ---- the table ---------------------------------------------------------------------------------


def _display(frame: pd.DataFrame) -> pd.DataFrame:
    def fmt(value, spec: str, scale: float = 1.0) -> str:
        return "" if pd.isna(value) else format(value * scale, spec)

    return pd.DataFrame(
        {
            "dataset": frame["dataset"],
            "experiment": frame["experiment"],
            "seed": frame["seed"].astype(str),
            "where": frame["where"],
            "jobs": frame["slurm_job_ids"],
            "state": frame["state"],
            "time asked (min)": [fmt(v, ".0f") for v in frame["time_asked_min"]],
            "time used (min)": [fmt(v, ".1f") for v in frame["time_used_min"]],
            "memory asked (GB)": [fmt(v, ".1f") for v in frame["mem_asked_gb"]],
            "memory peak (GB)": [fmt(v, ".2f") for v in frame["mem_peak_gb"]],
            "CPUs": [fmt(v, ".0f") for v in frame["cpus"]],
            "CPU efficiency": [fmt(v, ".0%") for v in frame["cpu_efficiency"]],
            "GPU busy": [fmt(v, ".0%") for v in frame["gpu_utilization"]],
            "GPU memory peak (GB)": [fmt(v, ".1f") for v in frame["gpu_mem_peak_gb"]],
            "note": frame["note"],
        }
    )


def write_efficiency(log_paths, out_dir, labels=None) -> None:
    """Write efficiency.{csv,md,html} into `out_dir`: every log read, then sacct asked about all
    their jobs at once (again, for up to a minute, while one has not ended yet: see
    `slurm_usage.job_usage`); where sacct is missing or does not answer, the table says so."""
    logs = read_logs(log_paths, labels=labels)
    job_ids = sorted(
        {j for log in logs for j in str(log.attrs.get("slurm_job_ids") or "").split(",") if j}
    )
    usage, note = None, _NOTE
    if job_ids:
        usage = slurm_usage.job_usage(job_ids)
        if usage is None:
            why = "not answering" if slurm_usage.sacct_available() else "missing"
            note += f" sacct is {why} here: the SLURM figures are left blank."
    frame = efficiency_frame(logs, usage)
    told = advice(frame)
    if told:
        lines = [f"- {exp}: {'; '.join(said)}" for exp, said in told.items()]
        note += "\n\nAdvice:\n" + "\n".join(lines)
    write_table(
        out_dir,
        "efficiency",
        frame,
        _display(frame),
        title="imgzoo: how the runs used what they asked for",
        note=note,
        text_columns=_TEXT_COLUMNS,
    )
