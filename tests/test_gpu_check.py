"""benchmarks/gpu_check.py in its CPU form: the same code paths as on a GPU, on tiny sizes, so
that the check cannot rot between the rare runs on a GPU machine."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_gpu_check_runs_every_section_on_the_cpu(tmp_path):
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks/gpu_check.py"), "--quick", "--device", "cpu",
         "--out", str(tmp_path), "--threads", "1"],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((tmp_path / "gpu_check.json").read_text())
    assert list(results) == ["environment", "profile", "step", "pack", "determinism", "sync_free",
                             "cuda_tests", "seeds_loop", "overhead", "models"]
    assert not any("error" in r for r in results.values()), results
    # where a step's time goes, eager and with cuda_graphs: auto (eager on the CPU, said so)
    profile = results["profile"]["rows"]
    assert [(r["model"], r["cuda_graphs"]) for r in profile] == [
        ("mlp", False), ("mlp", "auto"), ("vit", False), ("vit", "auto")]
    assert all(r["aten_ops"] > 0 and r["wall_ms"] > 0 and not r["graphed"] for r in profile)
    for row in results["step"]["rows"]:
        assert row["eager_img_s"] > 0 and row["img_s"] > 0 and row["speedup"] > 0
        assert "CUDA graphs need a GPU" in row["note"]
    # the same seed gives the same numbers, and a stopped-and-resumed run equals a whole one
    for row in results["determinism"]["rows"]:
        assert row["repeat_identical"] and row["stopped_mid_epoch"] and row["resume_identical"]
    assert results["sync_free"]["note"] == "needs CUDA"
    assert all(r["imgzoo_img_s"] > 0 and r["bare_img_s"] > 0
               for r in results["overhead"]["rows"] if not r.get("skipped"))
    assert results["seeds_loop"]["rows"][1]["imgzoo_speedup"] > 0
    # K runs side by side, each in its own process, all of them training; no MPS on this machine
    assert [r["pack"] for r in results["pack"]["rows"]] == [1, 2]
    assert all(r["total_img_s"] > 0 and min(r["steps_per_run"]) > 0 and not r["mps"]
               for r in results["pack"]["rows"])
    assert results["pack"]["series"][1]["mps_note"] == "no nvidia-cuda-mps-control on this machine"
    assert all(r["graph_equals_eager"] for r in results["determinism"]["rows"])
    assert {r["model"] for r in results["models"]["rows"]} == {"mlp", "vit"}
    assert "## determinism: ok" in (tmp_path / "gpu_check.md").read_text()


def test_gpu_check_says_where_its_budget_stopped_it(tmp_path):
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks/gpu_check.py"), "--quick", "--device", "cpu",
         "--out", str(tmp_path), "--budget-s", "0", "--sections", "environment", "step"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "stopped before 'environment'; the rest: --sections environment step" in done.stdout
    results = json.loads((tmp_path / "gpu_check.json").read_text())
    skipped = {"ok": None, "skipped": "out of time"}
    assert results == {"environment": skipped, "step": skipped}
