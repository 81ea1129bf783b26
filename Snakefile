# imgzoo: every experiment x dataset x seed becomes a training run; aggregation rules turn the
# run logs into tables, curves and weight grids; `snakemake --report` bundles them.
# Logic lives in src/imgzoo (testable without Snakemake); the rules only call its command line.
# No `configfile:` here on purpose: a study is exactly the --configfile files given (default
# config/config.yaml), read by imgzoo.config.load_study in workflow/rules/common.smk.

from snakemake.utils import min_version

min_version("9.0")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/aggregate.smk"


# Locally, a run that wants a GPU takes one (rule train's `gpu` resource): at most as many run at
# once as this machine has GPUs (`--resources gpu=N` says otherwise; profiles/slurm lifts it).
workflow.register_resource("gpu", local_gpu_limit(workflow.global_resources))


rule all:
    default_target: True
    input:
        all_outputs(),
    localrule: True
