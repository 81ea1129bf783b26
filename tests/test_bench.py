"""benchmarks/train_step.py runs on a tiny config and writes CSV and JSON with the documented
columns.

These tests never assert a timing: only that the numbers are there, finite and positive.
"""

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
# As `python benchmarks/train_step.py` runs it: its folder first on the path (reference_loop).
sys.path.insert(0, str(BENCHMARKS))
import train_step as bench  # noqa: E402

main = bench.main

TINY = [
    "--models", "mlp", "--image-size", "8", "--batch-size", "16", "--steps", "2",
    "--warmup", "1", "--train-size", "120", "--test-size", "40", "--threads", "1",
    "--model-args", 'mlp={"hidden": [32]}',
]
ALWAYS = [
    "params", "image_size", "batch_size", "warmup", "steps", "train_step_ms", "train_img_s",
    "model_step_ms", "input_ms", "eval_img_s", "eval_share_cifar10", "rss_peak_mb",
    "train_step_cpu_ms", "model_step_cpu_ms", "inputs_share", "eval_batch_size",
]
REFERENCE = [
    "ref_step_ms", "ref_img_s", "ref_rss_peak_mb", "speedup", "ref_cpu_ms", "speedup_cpu",
]


def _positive(value) -> bool:
    return value is not None and math.isfinite(float(value)) and float(value) > 0


def _read_csv(path):
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


def test_bench_without_reference_writes_csv_and_json(tmp_path, capsys):
    out_csv, out_json = tmp_path / "bench.csv", tmp_path / "bench.json"
    assert main([*TINY, "--no-reference", "--out", str(out_csv), "--out", str(out_json)]) == 0
    printed = capsys.readouterr().out
    assert "train img/s" in printed and "mlp" in printed

    header, rows = _read_csv(out_csv)
    assert header == [*bench.COLUMNS, *bench.META_COLUMNS]
    assert len(rows) == 1
    row = rows[0]
    assert row["model"] == "mlp" and row["family"] == "mlp" and row["device"] == "cpu"
    assert json.loads(row["model_args"]) == {"hidden": [32]}
    for key in ALWAYS:
        assert _positive(row[key]), key
    assert math.isfinite(float(row["outside_share"])) and float(row["outside_share"]) < 1
    assert all(row[key] == "" for key in REFERENCE)  # no reference run
    assert row["cuda_max_alloc_mb"] == ""
    assert row["torch"] and row["threads"] == "1" and row["command"]

    doc = json.loads(out_json.read_text())
    assert doc["columns"] == list(bench.COLUMNS)
    assert set(doc["meta"]) == set(bench.META_COLUMNS)
    (jrow,) = doc["rows"]
    assert list(jrow) == list(bench.COLUMNS)
    for key in ALWAYS:
        assert _positive(jrow[key]), key
    assert all(jrow[key] is None for key in REFERENCE)
    assert jrow["eval_batch_size"] == 128  # `auto` on the CPU
    assert {t["target"] for t in doc["targets"]} == {
        "share outside the model <=",
        "eval share of a CIFAR-10 epoch <=",
    }


def test_bench_with_the_reference_loop(tmp_path):
    out_json = tmp_path / "bench.json"
    assert main([*TINY, "--out", str(out_json)]) == 0
    (row,) = json.loads(out_json.read_text())["rows"]
    for key in [*ALWAYS, *REFERENCE]:
        assert _positive(row[key]), key
    assert row["speedup_cpu"] == pytest.approx(row["ref_cpu_ms"] / row["train_step_cpu_ms"])


def test_reference_transform_is_the_write_ups_recipe():
    from reference_loop import train_transform
    from torchvision import transforms

    names = [type(t) for t in train_transform(32, "standard", [0.5] * 3, [0.2] * 3).transforms]
    assert names == [
        transforms.RandomCrop,
        transforms.RandomHorizontalFlip,
        transforms.ToTensor,
        transforms.Normalize,
    ]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--models", "no-such-model"], "no-such-model"),
        (["--out", "bench.txt"], ".csv or .json"),
    ],
)
def test_bench_usage_errors_exit_2(extra, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main([*TINY, *extra]) == 2
    assert message in capsys.readouterr().err


def test_a_missed_share_within_the_noise_says_so():
    row = {c: None for c in bench.COLUMNS}
    row.update(
        model="resnet18", family="resnet18", device="cpu", outside_share=0.08,
        outside_share_noise=0.05, eval_share_cifar10=0.09,
    )
    noisy = bench.check_targets([row])
    assert [(t["target"], t["met"]) for t in noisy] == [
        ("share outside the model <=", False), ("eval share of a CIFAR-10 epoch <=", True),
    ]
    meta = {"device_name": "cpu", "cpu_count": 2, "threads": 1, "torch": "x",
            "loadavg_start": "0", "loadavg_end": "0"}
    assert "MISSED, within the noise of the rounds (+-5.0%)" in bench.report([], meta, noisy)
    row["outside_share_noise"] = 0.01
    assert "MISSED\n" in bench.report([], meta, bench.check_targets([row])) + "\n"


def test_the_targets_come_from_the_performance_page():
    targets = bench.load_targets()
    assert targets["outside_share_max"]["cpu"]["mlp"] == 0.15
    assert targets["speedup_min"]["mixer"] == 2.0 and 0 < targets["eval_share_max"] < 1


def test_the_documented_command_runs(tmp_path):
    """`python benchmarks/train_step.py ...`, as README and docs/performance.md give it."""
    out = tmp_path / "bench.json"
    command = [sys.executable, str(BENCHMARKS / "train_step.py"), *TINY, "--no-reference"]
    result = subprocess.run([*command, "--out", str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "train img/s" in result.stdout
    (row,) = json.loads(out.read_text())["rows"]
    assert _positive(row["train_img_s"])


def test_a_network_from_the_users_file_is_benchmarked(tmp_path, monkeypatch):
    """Any name a study's `model:` takes, here `file.py:callable`, as the run would build it."""
    (tmp_path / "tiny_net.py").write_text(
        "from torch import nn\n\n\n"
        "def build(num_classes, image_size, in_chans, width=8):\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(in_chans * image_size ** 2, width),\n"
        "                         nn.ReLU(), nn.Linear(width, num_classes))\n"
    )
    monkeypatch.chdir(tmp_path)  # the file's path is relative to the working directory
    out = tmp_path / "bench.json"
    args = [*TINY[2:-2], "--models", "tiny_net.py:build", "--model-args",
            'tiny_net.py:build={"width": 12}', "--no-reference", "--out", str(out)]
    assert main(args) == 0
    (row,) = json.loads(out.read_text())["rows"]
    assert row["family"] == "tiny_net.py:build"
    assert json.loads(row["model_args"]) == {"width": 12}
    assert row["params"] == 3 * 8 * 8 * 12 + 12 + 12 * 10 + 10
    assert _positive(row["train_img_s"])
