"""pyproject.toml and environment.yml list the same packages, and the layout is as documented."""

import re
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def names(requirements):
    return {re.split(r"[<>=!~ ]", r, maxsplit=1)[0].lower() for r in requirements}


def test_pyproject_and_environment_list_the_same_packages():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    environment = yaml.safe_load((REPO / "environment.yml").read_text())
    pip = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    assert names(project["dependencies"]) == names(p for p in pip if not p.startswith("-e"))
    assert "imgzoo" in project["scripts"]


def test_workflow_schema_is_the_package_schema():
    assert (REPO / "workflow/schemas/config.schema.yaml").resolve() == (
        REPO / "src/imgzoo/config.schema.yaml"
    )
