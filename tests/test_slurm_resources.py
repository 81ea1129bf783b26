"""A run's resources through their three vocabularies (the config's, Snakemake's, submitit's),
without a cluster; tests/test_slurm.py submits them to a real one."""

import pytest

from imgzoo.config import Run, Study
from imgzoo.errors import ConfigError
from imgzoo.slurm_resources import as_snakemake, from_snakemake, sbatch_flags
from imgzoo.slurm_submit import job_parameters

STUDY = {
    "datasets": ["digits"],
    "seeds": [0],
    "resources": {"cpus": 1, "mem_gb": 1, "time_min": 10},
    "experiments": {"wide": {"model": "mlp"}},
}
EVERY = {
    "partition": "gpu",
    "account": "lab",
    "qos": "high",
    "constraint": "a100",
    "gpus": 2,
    "cpus": 8,
    "mem_gb": 1.5,
    "time_min": 90,
    "extra_sbatch": ["--exclusive", "--nodelist=n1", "--mail-type END"],
    "pack": 3,
    "gpu_mem_fraction": 0.3,
    "mps": True,
}


def test_resources_become_sbatch_options():
    spec = Study(STUDY).spec(Run("digits", "wide", 0)).with_resources(EVERY)
    assert job_parameters(spec) == {
        "name": "imgzoo:digits:wide:s0",
        "timeout_min": 90,
        "mem_gb": 1.5,
        "cpus_per_task": 8,
        "gpus_per_node": 2,
        "nodes": 1,
        "tasks_per_node": 1,
        "slurm_partition": "gpu",
        "slurm_account": "lab",
        "slurm_qos": "high",
        "slurm_constraint": "a100",
        "slurm_additional_parameters": {
            "requeue": True,
            "exclusive": True,
            "nodelist": "n1",
            "mail-type": "END",
        },
    }
    bare = spec.with_resources({**EVERY, "gpus": 0, "partition": None, "extra_sbatch": []})
    params = job_parameters(bare)
    assert "gpus_per_node" not in params and "slurm_partition" not in params


def test_resources_travel_through_snakemake_and_back_unchanged():
    smk = as_snakemake(EVERY, max_requeues=2, log_folder="logs/slurm/digits/wide/seed0")
    assert smk["runtime"] == 90 and smk["mem_mb"] == 1536 and smk["gpu"] == 2
    assert smk["slurm_extra"] == "--exclusive --nodelist=n1 '--mail-type END'"
    assert smk["gpu_mem_fraction"] == "0.3"  # text: Snakemake rounds numbers to integers
    assert smk["mps"] == 1
    assert (smk["max_requeues"], smk["slurm_logs"]) == (2, "logs/slurm/digits/wide/seed0")
    assert from_snakemake(smk) == EVERY
    # Snakemake leaves unset (None) resources out; a job without a GPU has no `gpu`
    unset = {k: v for k, v in as_snakemake(
        {**EVERY, "gpus": 0, "partition": None, "gpu_mem_fraction": None, "extra_sbatch": [],
         "mps": False},
        max_requeues=0, log_folder="x",
    ).items() if v is not None}
    assert from_snakemake(unset) == {
        **EVERY, "gpus": 0, "partition": None, "gpu_mem_fraction": None, "extra_sbatch": [],
        "mps": False,
    }


def test_short_sbatch_options_are_refused_with_the_key_before_any_job():
    with pytest.raises(ConfigError, match="'-x n1'.*--name=value"):
        sbatch_flags(["-x n1"])
    bad = {**STUDY, "experiments": {"wide": {"model": "mlp",
                                             "resources": {"extra_sbatch": ["-x n1"]}}}}
    with pytest.raises(ConfigError, match="experiments.wide.resources.extra_sbatch.*'-x n1'"):
        Study(bad)
    with pytest.raises(ConfigError, match="config 'resources.extra_sbatch'"):
        Study({**STUDY, "resources": {"extra_sbatch": ["exclusive"]}})
