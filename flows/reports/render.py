"""Reports as values, and their three renderings: plain text, Markdown and CSV.

A `Report` is a title, a few lines saying what it covers, and sections; each `Section` is a
table (headers and rows of already formatted cells) with optional notes. The builders in
`flows.reports.builders` make them; nothing here reads QuestDB.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Final

__all__ = ["FORMATS", "Report", "Section", "render"]

FORMATS: Final = ("text", "markdown", "csv")


@dataclass(frozen=True, slots=True)
class Section:
    """One table of a report.

    Attributes:
        title: What the table shows.
        headers: Column names.
        rows: Cells, already formatted as text, one tuple per row.
        notes: Sentences printed under the table (empty when it has rows and nothing to add).
    """

    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Report:
    """A whole report.

    Attributes:
        title: The report's title (also the e-mail subject when sent).
        lines: What the report covers (period, filters, data source).
        sections: Its tables, in order.
    """

    title: str
    lines: tuple[str, ...] = ()
    sections: tuple[Section, ...] = field(default_factory=tuple)

    def section(self, title: str) -> Section:
        """Return the section with this title.

        Args:
            title: the section's exact title, e.g. `Breaches`.

        Returns:
            The first section with that title.

        Raises:
            KeyError: No section has that title.
        """
        for section in self.sections:
            if section.title == title:
                return section
        raise KeyError(title)


def render(report: Report, fmt: str) -> str:
    """Render `report` as `text`, `markdown` or `csv`.

    CSV holds one block per section: a row with the section's title, its header row, its rows
    and an empty row.

    Text and Markdown show the title, the report's lines, then each section's table (left out
    when it has no rows) followed by its notes; CSV holds only the tables, so a spreadsheet
    reads them, and drops the title, lines and notes.

    Args:
        report: the report.
        fmt: one of `FORMATS`.

    Returns:
        The rendering, ending with one newline (CSV: with the empty row of its last block).

    Raises:
        ValueError: `fmt` is not one of `FORMATS`.
    """
    if fmt == "text":
        return _text(report)
    if fmt == "markdown":
        return _markdown(report)
    if fmt == "csv":
        return _csv(report)
    msg = f"unknown report format {fmt!r}; use one of {', '.join(FORMATS)}"
    raise ValueError(msg)


def _text(report: Report) -> str:
    """Render as plain text: underlined titles, columns padded to their widest cell."""
    out = [report.title, "=" * len(report.title), *report.lines]
    for section in report.sections:
        out += ["", section.title, "-" * len(section.title)]
        if section.rows:
            widths = [len(h) for h in section.headers]
            for row in section.rows:
                widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
            out.append("  ".join(h.ljust(w) for h, w in zip(section.headers, widths, strict=True)))
            for row in section.rows:
                cells = zip(row, widths, strict=True)
                out.append("  ".join(c.ljust(w) for c, w in cells).rstrip())
        out += list(section.notes)
    return "\n".join(line.rstrip() for line in out) + "\n"


def _md_cell(text: str) -> str:
    """Escape the pipes of a cell, which would otherwise split a Markdown table column."""
    return text.replace("|", "\\|")


def _markdown(report: Report) -> str:
    """Render as Markdown: `#` title, `##` per section, a pipe table, notes as line breaks."""
    out = [f"# {report.title}", ""]
    out += [f"{line}  " for line in report.lines]
    for section in report.sections:
        out += ["", f"## {section.title}", ""]
        if section.rows:
            out.append("| " + " | ".join(_md_cell(h) for h in section.headers) + " |")
            out.append("|" + "---|" * len(section.headers))
            out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in section.rows]
            if section.notes:
                out.append("")
        if section.notes:
            # Two trailing spaces make a Markdown line break between notes.
            out.append("  \n".join(section.notes))
    return "\n".join(out).rstrip() + "\n"


def _csv(report: Report) -> str:
    """Render the sections' tables as CSV blocks (quoting as the `csv` module's default)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for section in report.sections:
        writer.writerow([section.title])
        writer.writerow(section.headers)
        writer.writerows(section.rows)
        writer.writerow([])
    return buffer.getvalue()
