"""Any table as files: CSV (the data, numbers unrounded) and Markdown and HTML (the display)."""

from __future__ import annotations

from html import escape
from pathlib import Path

import pandas as pd

from imgzoo.aggregate import write_text


def percent(value, digits: int = 2) -> str:
    """A fraction shown in percent ('' for a missing value)."""
    return "" if pd.isna(value) else f"{value * 100.0:.{digits}f}"


def format_count(value) -> str:
    """A count (parameters, images) with thousands separators: 11,172,810."""
    return "" if pd.isna(value) else f"{int(value):,}"


_CSS = (
    "body{font-family:system-ui,sans-serif;font-size:13px;margin:1em}"
    "table{border-collapse:collapse}"
    "th,td{padding:3px 9px;border-bottom:1px solid #ddd;text-align:left;white-space:nowrap;"
    "font-variant-numeric:tabular-nums}"
    "th{background:#f2f2f2;position:sticky;top:0}"
    "tbody tr:hover{background:#f7f9fc}"
)


def _html(shown: pd.DataFrame, title: str, note: str, text_columns=()) -> str:
    table = shown.to_html(index=False, border=0)
    # numbers aligned right, as in the Markdown
    numbers = ",".join(
        f"td:nth-child({i}),th:nth-child({i})"
        for i, column in enumerate(shown.columns, start=1)
        if column not in text_columns
    )
    css = _CSS + (f"{numbers}{{text-align:right}}" if numbers else "")
    # the note's paragraphs apart by a blank line, its lines kept
    paragraphs = "".join(
        f"<p>{'<br>'.join(escape(line) for line in paragraph.splitlines())}</p>\n"
        for paragraph in note.split("\n\n")
    )
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{css}</style></head>\n<body>\n<h3>{escape(title)}</h3>\n"
        f"{paragraphs}{table}\n</body></html>\n"
    )


def markdown_table(shown: pd.DataFrame, text_columns=()) -> str:
    """`shown` as a Markdown table: text columns aligned left, numbers right, kept as written."""
    # disable_numparse: tabulate would otherwise re-format "93.10" as 93.1
    align = ["left" if c in text_columns else "right" for c in shown.columns]
    return shown.to_markdown(index=False, disable_numparse=True, colalign=align)


def write_table(
    out_dir,
    name: str,
    data: pd.DataFrame,
    shown: pd.DataFrame,
    *,
    title: str,
    note: str,
    text_columns=(),
) -> None:
    """Write `name`.csv (the `data`, numbers unrounded) and `name`.md and `name`.html (the
    `shown` strings, under `title` and `note`) into `out_dir`, each atomically; the
    `text_columns` are aligned left, every other (numbers) right."""
    out_dir = Path(out_dir)
    write_text(out_dir / f"{name}.csv", data.to_csv(index=False))
    markdown = markdown_table(shown, text_columns)
    write_text(out_dir / f"{name}.md", f"## {title}\n\n{note}\n\n{markdown}\n")
    write_text(out_dir / f"{name}.html", _html(shown, title, note, text_columns))
