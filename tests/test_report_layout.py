"""The report's front page as a reader opens it: a small study trained and bundled by a real
`snakemake --report`, opened in headless Chromium (Debian's `chromium`) at common window widths.

A script added to a copy of the report measures, once the page has drawn itself, where the front
page's parts are (every paragraph, figure and list of the front page, the workflow graph), then
clicks the front page's link to the summary table; Chromium's `--dump-dom` prints what it wrote.
The assertions are geometry: no element of the front page intersects the workflow graph, none is
cut off above the scroll range or beyond the window's width (before this test, the headline
table ran under the graph, and a page taller than the window lost its top). A screenshot per
width is left in the test's temporary folder (never in the checkout) for a person to look at.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from urllib.parse import unquote

import pytest
import yaml
from helpers import snakemake

from imgzoo.paths import Layout

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium")
LAYOUT = Layout("layout")
# widths a reader's window has (laptop to desktop), with heights that make the page scroll
WINDOWS = [(1280, 800), (1400, 900), (1920, 1080)]

STUDY = {
    "name": "layout",
    "datasets": ["digits", "synthetic"],
    "seeds": [0, 1],
    "data": {"synthetic": {"image_size": 16, "train_size": 300, "test_size": 100}},
    "train": {"epochs": 1, "batch_size": 64, "lr": 0.01, "augment": "none"},
    "experiments": {
        "mlp": {
            "model": "mlp",
            "model_args": {"hidden": [32]},
            "published": {"digits": {"value": 90.0, "measures": "final_test", "source": "a"}},
        },
        "mixer": {
            "model": "mixer",
            "model_args": {"patch_size": 4, "dim": 16, "depth": 1},
            "per_dataset": {"digits": {"model_args": {"patch_size": 2}}},
            "published": {"digits": {"value": 95.0, "measures": "best_test", "source": "b"}},
        },
    },
    "sweeps": {"mlp-lr": {"base": "mlp", "grid": {"lr": [0.03, 0.003]}}},
    "report": {"weight_grids": False},
}

# Run in the page once React and Vega have drawn it: the boxes of the front page's parts and of
# the workflow graph, then a click on the summary's link and what the page shows after it.
MEASURE = """
<script>
function imgzooBox(el) {
  const r = el.getBoundingClientRect();
  return {left: r.left, top: r.top, right: r.right, bottom: r.bottom};
}
setTimeout(function () {
  const front = document.getElementById("imgzoo-front").closest(".document");
  // every element the front page draws: paragraphs, figures, tables, lists, words, links
  const parts = Array.from(front.querySelectorAll("*"))
    .filter((el) => el.getBoundingClientRect().width * el.getBoundingClientRect().height > 0);
  const graph = document.getElementById("rulegraph");
  const boxes = {
    window: {width: window.innerWidth, height: window.innerHeight},
    front: imgzooBox(front),
    parts: parts.map((el) => ({tag: el.tagName, text: el.textContent.slice(0, 60),
                               box: imgzooBox(el)})),
    figures: Array.from(front.querySelectorAll("img")).map((img) => ({
      box: imgzooBox(img), loaded: img.complete && img.naturalWidth > 0})),
    graph: imgzooBox(graph),
    graphDrawn: graph.querySelector("canvas, svg") !== null,
    links: Array.from(front.querySelectorAll("a")).map((a) => ({
      text: a.textContent, href: a.getAttribute("href")})),
    results: Object.keys(results),
  };
  const summary = Array.from(front.querySelectorAll("a"))
    .find((a) => a.textContent === "Summary over seeds");
  summary.click();
  setTimeout(function () {
    const frame = document.querySelector("iframe");
    // the table the click opened (a data URI, base64) or nothing
    boxes.afterClick = frame ? atob(frame.src.split("base64,")[1]).slice(0, 3000) : "";
    const out = document.createElement("pre");
    out.id = "imgzoo-boxes";
    out.textContent = JSON.stringify(boxes);
    document.body.appendChild(out);
  }, 500);
}, 2000);
</script>
"""


def chromium(*args: str, width: int, height: int, profile) -> subprocess.CompletedProcess:
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}",
        f"--window-size={width},{height}", "--virtual-time-budget=10000", *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (.ci/run installs Debian's chromium)")
        pytest.skip("needs headless Chromium: apt-get install chromium")
    workdir = tmp_path_factory.mktemp("study")
    (workdir / "config.yaml").write_text(yaml.safe_dump(STUDY, sort_keys=False))
    done = snakemake(workdir, "--cores", "2")
    assert done.returncode == 0, done.stderr[-3000:]
    made = snakemake(workdir, "--report", LAYOUT.report)
    assert made.returncode == 0, made.stderr[-3000:]
    return workdir / LAYOUT.report


def intersect(a: dict, b: dict) -> bool:
    return a["left"] < b["right"] and b["left"] < a["right"] and a["top"] < b["bottom"] and (
        b["top"] < a["bottom"]
    )


@pytest.mark.parametrize("width,height", WINDOWS, ids=[f"{w}px" for w, _ in WINDOWS])
def test_front_page_overlaps_nothing_and_links_in_one_click(report, tmp_path, width, height):
    page = tmp_path / "measured.html"
    html, end, rest = report.read_text().rpartition("</body>")  # the page's own, the last one
    page.write_text(html + MEASURE + end + rest)
    dumped = chromium("--dump-dom", page.as_uri(), width=width, height=height,
                      profile=tmp_path / "profile")
    found = re.search(r'<pre id="imgzoo-boxes">(.*?)</pre>', dumped.stdout, re.S)
    assert found, dumped.stderr[-2000:]
    boxes = json.loads(found.group(1).replace("&amp;", "&").replace("&lt;", "<").replace(
        "&gt;", ">").replace("&quot;", '"'))
    assert boxes["window"]["width"] == width

    # the page drew itself: the graph, both datasets' figures (loaded) and their sentences
    assert boxes["graphDrawn"] and boxes["graph"]["right"] > boxes["graph"]["left"]
    assert [f["loaded"] for f in boxes["figures"]] == [True, True]
    assert not any("System Message" in p["text"] for p in boxes["parts"])  # docutils' errors
    sentences = [p for p in boxes["parts"] if " is best: " in p["text"]]
    assert [p["text"].split(",")[0] for p in sentences] == ["On digits", "On synthetic"]

    # nothing of the front page lies under the graph, above the page or beyond the window
    drawn = boxes["parts"] + [{"tag": "IMG", "text": "figure", "box": f["box"]}
                              for f in boxes["figures"]]
    assert len(drawn) > 30
    for part in drawn:
        where = f"{part['tag']} {part['text']!r} at {part['box']} ({width}px)"
        assert not intersect(part["box"], boxes["graph"]), f"under the graph: {where}"
        assert part["box"]["top"] >= 0 and part["box"]["left"] >= 0, f"cut off: {where}"
        assert part["box"]["right"] <= width, f"beyond the window: {where}"
    assert not intersect(boxes["front"], boxes["graph"])

    # every link opens a result of this report; the summary's, clicked once, shows the table
    links = {link["text"]: link["href"] for link in boxes["links"]}
    assert {"Summary over seeds", "Every run", "Published numbers against ours",
            "Learning curves on digits", "Learning curves on synthetic"} <= set(links)
    for text, href in links.items():
        path = unquote(re.search(r"handleSelectedResult\('([^']+)'\)", href)[1])
        assert path in boxes["results"], text
    assert "imgzoo summary over seeds" in boxes["afterClick"]

    shot = tmp_path / f"front-{width}.png"
    chromium(f"--screenshot={shot}", report.as_uri(), width=width, height=height,
             profile=tmp_path / "profile")
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")
