"""What the report's front page shows and links to, computed from what the workflow makes.

The front page (workflow/report/workflow.rst) includes headline.rst, which the headline rule
writes from `front_page(layout, datasets, outputs)`: per dataset the accuracy figure and the
learning curves, and a link to each table the study makes, in `TABLES` order. A table is linked when
one of its files is among `outputs` (the workflow's targets, `all_outputs()` in
workflow/rules/common.smk), so a table another rule adds (claims, efficiency) appears on the
front page once the workflow makes it, and a study without published numbers links no
reproduction table. Imports nothing heavy: the Snakefile calls it while planning.
"""

from __future__ import annotations

from urllib.parse import quote

from imgzoo.paths import Layout

# (table name, what its link says), in the order the front page lists them
TABLES = (
    ("summary", "Summary over seeds"),
    ("claims", "Claims"),
    ("efficiency", "Efficiency"),
    ("reproduction", "Published numbers against ours"),
    ("comparisons", "Paired comparisons"),
    ("headline", "Headline table"),
    ("runs", "Every run"),
)
_TABLE_FILES = ("csv", "md", "html", "rst")


def front_page(layout: Layout, datasets, outputs) -> dict:
    """{"figures": {dataset: accuracy figure}, "curves": {dataset: learning curves},
    "tables": [{"label", "path"}]}: the report items among `outputs` that the front page shows
    (figures) or links to (the rest); paths as the workflow names them."""
    outputs = {str(path) for path in outputs}
    figures = {d: layout.accuracy_plot(d) for d in datasets if layout.accuracy_plot(d) in outputs}
    curves = {d: layout.curves(d) for d in datasets if layout.curves(d) in outputs}
    tables = [
        {"label": label, "path": layout.table(name, "html")}
        for name, label in TABLES
        if any(layout.table(name, ext) in outputs for ext in _TABLE_FILES)
    ]
    return {"figures": figures, "curves": curves, "tables": tables}


def report_link(label: str, path: str) -> str:
    """A reStructuredText link that opens the report item `path` (a table, a figure) in one
    click, as the eye button of Snakemake's result list does; where that part of Snakemake's
    page is missing, it shows the item's entry (caption and view button), Snakemake's own link
    for results (`snakemake.report`'s rst_links)."""
    target = "'" + quote(path, safe="/") + "'"  # quoted as Snakemake quotes its links
    # docutils removes every space from a link's URI: `typeof(X)`, `new(X)(app)`, never `new X`
    script = (
        "void(typeof(ToggleViewManager)=='function'"
        f"?new(ToggleViewManager)(app).handleSelectedResult({target})"
        f":app.showResultInfo({target}))"
    )
    return f"`{label} <javascript:{script}>`__"
