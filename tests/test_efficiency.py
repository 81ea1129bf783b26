"""The efficiency table on hand-made run logs and sacct's own output (no cluster needed):
sacct's formats read right, the figures per run, the advice per experiment only where it is
clear, and a table that says so where sacct is missing. tests/test_slurm_busy.py checks the
table's numbers against sacct for real jobs."""

import os

import pandas as pd
import pytest
from helpers import one_epoch_log

from imgzoo import runlog
from imgzoo.aggregate.efficiency import advice, efficiency_frame, write_efficiency
from imgzoo.slurm_usage import parse_sacct

# `sacct -n -P -D -o JobIDRaw,State,ElapsedRaw,TotalCPU,AllocCPUS,MaxRSS,ReqMem,TimelimitRaw`, as
# SLURM 22.05 writes it: job 41 ran once (a batch step and the srun step that trains); job 42 was
# requeued once (a record per attempt, each with its steps).
SACCT = """\
41|COMPLETED|840|26:30.500|4||16G|240
41.batch|COMPLETED|840|00:01.200|4|10476K||
41.extern|COMPLETED|840|00:00.001|4|1024K||
41.0|COMPLETED|838|26:29.299|4|2202009K||
42|REQUEUED|300|05:00.000|2||4G|60
42.batch|CANCELLED|300|00:00.500|2|9000K||
42.0|CANCELLED|299|04:59.500|2|1.5G||
42|COMPLETED|1200|20:00.000|2||4G|60
42.batch|COMPLETED|1200|00:00.700|2|9500K||
42.0|COMPLETED|1199|19:59.300|2|1572864K||
"""


def test_sacct_output_is_read_per_job_every_attempt_together():
    usage = parse_sacct(SACCT.splitlines())
    once, requeued = usage["41"], usage["42"]
    assert (once.state, once.attempts, once.elapsed_s, once.cpus) == ("COMPLETED", 1, 840, 4)
    assert once.cpu_s == pytest.approx(26 * 60 + 30.5)
    assert once.max_rss_mb == pytest.approx(2202009 / 1024)  # the srun step's, the largest
    assert once.req_mem_mb == 16 * 1024 and once.time_limit_min == 240
    assert (requeued.state, requeued.attempts) == ("COMPLETED", 2)
    assert requeued.elapsed_s == 1500 and requeued.longest_attempt_s == 1200
    assert requeued.cpu_s == pytest.approx(300 + 1200)
    assert requeued.max_rss_mb == pytest.approx(1.5 * 1024)


def write_log(root, experiment, seed, *, resources, job_ids=(), wall_time_s=600.0, gpu=None):
    log = one_epoch_log(experiment, seed, resources=resources, gpu=gpu, wall_time_s=wall_time_s,
                        slurm_job_ids=list(job_ids))
    log.attrs["device"] = "cuda" if gpu else "cpu"
    path = root / experiment / f"seed{seed}" / "metrics.h5"
    runlog.write(path, log)
    return path


RESOURCES = {"time_min": 240, "mem_gb": 16, "cpus": 4, "gpus": 1, "pack": 1}


def gpu_samples(utilization: float, memory_mb: float) -> dict:
    return {
        "time_s": [15.0, 30.0, 45.0],
        "utilization": [utilization - 2, utilization, utilization + 2],
        "memory_mb": [memory_mb / 2, memory_mb, memory_mb],
        "memory_total_mb": 81920.0,
        "source": "nvml",
        "device_id": "GPU-1",
        "interval_s": 15.0,
    }


@pytest.fixture
def logs(tmp_path):
    return [
        write_log(
            tmp_path,
            "big",
            0,
            resources=RESOURCES,
            job_ids=["41"],
            gpu=gpu_samples(22.0, 10 * 1024),
        ),
        write_log(
            tmp_path,
            "requeued",
            0,
            resources={**RESOURCES, "time_min": 60, "mem_gb": 4, "cpus": 2},
            job_ids=["42"],
        ),
        write_log(tmp_path, "lost", 0, resources=RESOURCES, job_ids=["43"]),
        write_log(tmp_path, "here", 0, resources={}, wall_time_s=90.0),
    ]


def frame_of(logs):
    return efficiency_frame([runlog.read(p) for p in logs], parse_sacct(SACCT.splitlines()))


def test_each_run_shows_asked_against_used(logs):
    frame = frame_of(logs).set_index("experiment")
    big = frame.loc["big"]
    assert (big["where"], big["state"], big["slurm_job_ids"]) == ("slurm", "COMPLETED", "41")
    assert big["time_asked_min"] == 240 and big["time_used_min"] == pytest.approx(14)
    assert big["mem_asked_gb"] == 16 and big["mem_peak_gb"] == pytest.approx(2202009 / 1024**2)
    assert big["cpu_efficiency"] == pytest.approx((26 * 60 + 30.5) / (840 * 4))
    assert big["gpu_utilization"] == pytest.approx(0.22) and big["gpu_mem_peak_gb"] == 10
    assert frame.loc["requeued", "attempts"] == 2
    assert frame.loc["requeued", "longest_attempt_min"] == pytest.approx(20)
    assert frame.loc["lost", "note"] == "sacct does not know job 43"
    here = frame.loc["here"]
    assert here["where"] == "local" and here["time_used_min"] == pytest.approx(1.5)
    assert pd.isna(here["time_asked_min"]) and here["note"] == "made locally: no request"


def test_advice_only_where_the_figures_are_clear(logs):
    told = advice(frame_of(logs))
    # CPUs busy 47% of 4: 3 with a margin, no clear case; 10 GB of an 80 GB GPU busy 22%:
    # 7 would fit, 4 keep it busy
    assert told["big"] == [
        "used at most 14 of 240 minutes: time_min 30 would queue sooner",
        "peak memory 2.1 of 16 GB: mem_gb 4 would do",
        "GPU busy 22% of the time: pack: 4 would fit in memory",
    ]
    # a requeued run needed its time limit; 1.5 of 4 GB is no clear case
    assert "requeued" not in told
    assert "here" not in told and "lost" not in told


def test_no_advice_for_requests_that_fit(tmp_path):
    fitting = {"time_min": 30, "mem_gb": 3, "cpus": 4, "gpus": 1, "pack": 1}
    log = write_log(
        tmp_path, "fits", 0, resources=fitting, job_ids=["41"], gpu=gpu_samples(85.0, 60 * 1024)
    )
    sacct = SACCT.replace("|16G|240", "|3G|30")
    frame = efficiency_frame([runlog.read(log)], parse_sacct(sacct.splitlines()))
    assert advice(frame) == {}


def test_where_sacct_is_missing_the_table_says_so(logs, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    write_efficiency(logs, tmp_path / "tables")
    frame = pd.read_csv(tmp_path / "tables/efficiency.csv").set_index("experiment")
    assert frame.loc["big", "note"] == "sacct did not answer: SLURM's figures are missing"
    assert pd.isna(frame.loc["big", "time_used_min"]) and frame.loc["big", "time_asked_min"] == 240
    markdown = (tmp_path / "tables/efficiency.md").read_text()
    assert "sacct is missing here: the SLURM figures are left blank." in markdown
    assert frame.loc["here", "time_used_min"] == pytest.approx(1.5)
    html = (tmp_path / "tables/efficiency.html").read_text()
    assert "<td>made locally: no request</td>" in html
    assert os.environ["PATH"] == str(tmp_path / "nothing")
