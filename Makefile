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

# Runs the default study (config/config.yaml) on the built-in datasets, then builds the HTML
# report when a table or figure is newer than it (so a second `make run` does nothing).
run: venv
	snakemake --profile profiles/local
	@if [ ! -e results/report.html ] || \
	    [ -n "$$(find results/tables results/figures -newer results/report.html -print -quit)" ]; \
	then snakemake --profile profiles/local --report results/report.html; \
	else echo "results/report.html is up to date"; fi

report: venv
	snakemake --profile profiles/local --report results/report.html

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

clean:
	rm -rf results/data results/runs results/tables results/figures results/logs results/report.html .snakemake
