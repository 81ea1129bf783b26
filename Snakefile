# imgzoo: every experiment x dataset x seed becomes a training run; aggregation rules turn the
# run logs into tables, curves and weight grids; `snakemake --report` bundles them.
# Logic lives in src/imgzoo (testable without Snakemake); the rules only call its command line.

from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/aggregate.smk"


rule all:
    default_target: True
    input:
        all_outputs(),
