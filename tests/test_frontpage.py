"""What the report's front page links to: computed from what the workflow makes."""

from __future__ import annotations

import docutils.core

from imgzoo.frontpage import TABLES, front_page, report_link
from imgzoo.paths import Layout

LAYOUT = Layout("study")
ALWAYS = [LAYOUT.table("runs"), LAYOUT.table("summary"), LAYOUT.table("headline", "rst")]


def labels(page) -> list[str]:
    return [table["label"] for table in page["tables"]]


def test_tables_the_workflow_makes_are_linked_in_order():
    page = front_page(LAYOUT, ["digits"], ALWAYS)
    assert labels(page) == ["Summary over seeds", "Headline table", "Every run"]
    assert page["tables"][0]["path"] == LAYOUT.table("summary", "html")
    # tables other rules add: linked once the workflow makes them, by any of their files
    more = [LAYOUT.table("efficiency", "csv"), LAYOUT.table("claims", "html"),
            LAYOUT.table("reproduction")]
    page = front_page(LAYOUT, ["digits"], ALWAYS + more)
    assert labels(page) == ["Summary over seeds", "Claims", "Efficiency",
                            "Published numbers against ours", "Headline table", "Every run"]
    assert {t["path"] for t in page["tables"]} >= {
        LAYOUT.table("claims", "html"), LAYOUT.table("efficiency", "html")}
    assert [name for name, _ in TABLES][:3] == ["summary", "claims", "efficiency"]


def test_figures_and_curves_of_the_datasets_made():
    outputs = ALWAYS + [LAYOUT.accuracy_plot("digits"), LAYOUT.curves("digits"),
                        LAYOUT.curves("synthetic")]
    page = front_page(LAYOUT, ["synthetic", "digits"], outputs)
    assert page["figures"] == {"digits": LAYOUT.accuracy_plot("digits")}
    assert list(page["curves"]) == ["synthetic", "digits"]  # the order given


def test_a_link_is_a_reference_docutils_keeps_whole():
    link = report_link("Sweep lr", "results/study/figures/digits/sweep-lr@x=1.png")
    html = docutils.core.publish_parts(
        f"- {link}\n", writer="html", settings_overrides={"halt_level": 2, "report_level": 5}
    )["body"]
    href = html.split('href="')[1].split('"')[0]
    # docutils drops every space of a URI: the script needs none
    assert href == link.split("<")[1].split(">")[0] and " " not in href
    assert "handleSelectedResult('results/study/figures/digits/sweep-lr%40x%3D1.png')" in href
    assert ">Sweep lr</a>" in html
