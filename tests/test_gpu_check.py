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
    assert list(results) == ["environment", "determinism", "sync_free", "cuda_tests",
                             "overhead", "seeds_loop", "pack", "models"]
    assert not any("error" in r for r in results.values()), results
    # the same seed gives the same numbers, and a stopped-and-resumed run equals a whole one
    for row in results["determinism"]["rows"]:
        assert row["repeat_identical"] and row["stopped_mid_epoch"] and row["resume_identical"]
    assert results["sync_free"]["note"] == "needs CUDA"
    assert all(r["imgzoo_img_s"] > 0 and r["bare_img_s"] > 0
               for r in results["overhead"]["rows"] if not r.get("skipped"))
    assert results["seeds_loop"]["rows"][1]["imgzoo_speedup"] > 0
    # K runs side by side, each in its own process, all of them training
    assert [r["pack"] for r in results["pack"]["rows"]] == [1, 2]
    assert all(r["total_img_s"] > 0 and min(r["steps_per_run"]) > 0
               for r in results["pack"]["rows"])
    assert {r["model"] for r in results["models"]["rows"]} == {"mlp", "vit"}
    assert "## determinism: ok" in (tmp_path / "gpu_check.md").read_text()
