# The two commands of the quick start: `make run` and `make test`. Both create the virtual
# environment first if it is missing (torch 2.14.1 + torchvision 0.29.1 from pip, ~6 GB).

VENV ?= .venv
BIN := $(abspath $(VENV))/bin
# The rules call the `imgzoo` command: put the environment first on PATH for Snakemake's jobs.
export PATH := $(BIN):$(PATH)

.PHONY: run report test lint format clean venv

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# The default study (config/config.yaml, `name: default`) writes under results/default/.
DEFAULT_RESULTS := results/default
REPORT := $(DEFAULT_RESULTS)/report.html

# Runs the default study on the built-in datasets, then builds the HTML report when a table or
# figure is newer than it (so a second `make run` does nothing).
run: venv
	snakemake --profile profiles/local
	@if [ ! -e $(REPORT) ] || \
	    [ -n "$$(find $(DEFAULT_RESULTS)/tables $(DEFAULT_RESULTS)/figures -newer $(REPORT) -print -quit)" ]; \
	then snakemake --profile profiles/local --report $(REPORT); \
	else echo "$(REPORT) is up to date"; fi

report: venv
	snakemake --profile profiles/local --report $(REPORT)

test: venv
	$(BIN)/python -m pytest

lint: venv
	ruff check src tests
	snakefmt --check .
	snakemake --lint

format: venv
	ruff check --fix src tests
	ruff format src tests
	snakefmt .

# Every study's results (results/<study>/), not only the default's.
clean:
	rm -rf results/*/ .snakemake
