"""One table, three files: CSV (for tools), Markdown (for reports) and LaTeX (for papers).

Numbers are written in full in the CSV and rounded for reading in Markdown and LaTeX
(p-values below 1e-4 in scientific notation, so a tiny p never reads as 0).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from videotune.core.io import atomic_write_text

_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
}


def fmt(value: Any, digits: int = 4, column: str = "") -> str:
    """A cell for reading: None/NaN as "n/a", floats rounded, p-values kept visible."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        if column.startswith("p") and 0 < value < 1e-4:
            return f"{value:.1e}"
        return f"{value:.{digits}f}"
    return str(value)


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIALS.get(ch, ch) for ch in text)


def markdown_table(columns: list[str], rows: list[dict[str, Any]], digits: int = 4) -> str:
    def cell(value: Any, column: str) -> str:
        # A pipe inside a cell would split it.
        return fmt(value, digits, column).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(c.replace("|", "\\|") for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c), c) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def latex_table(columns: list[str], rows: list[dict[str, Any]], caption: str = "", label: str = "", digits: int = 4) -> str:
    """A booktabs table (\\usepackage{booktabs}); text cells escaped, numbers right-aligned."""
    numeric = [all(isinstance(r.get(c), (int, float)) or r.get(c) is None for r in rows) for c in columns]
    spec = "".join("r" if is_num else "l" for is_num in numeric)
    lines = ["\\begin{table}[t]", "\\centering"]
    if caption:
        lines.append(f"\\caption{{{latex_escape(caption)}}}")
    if label:
        lines.append(f"\\label{{{label}}}")
    lines += [f"\\begin{{tabular}}{{{spec}}}", "\\toprule", " & ".join(latex_escape(c) for c in columns) + " \\\\", "\\midrule"]
    for row in rows:
        lines.append(" & ".join(latex_escape(fmt(row.get(c), digits, c)) for c in columns) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}", ""]
    return "\n".join(lines)


def csv_text(columns: list[str], rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: ("" if row.get(c) is None else row.get(c)) for c in columns})
    return buffer.getvalue()


def write_table(
    out_dir: Path, stem: str, columns: list[str], rows: list[dict[str, Any]], caption: str = "", digits: int = 4
) -> list[Path]:
    """Write OUT/stem.csv, stem.md and stem.tex atomically; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.{ext}" for ext in ("csv", "md", "tex")]
    atomic_write_text(paths[0], csv_text(columns, rows))
    atomic_write_text(paths[1], markdown_table(columns, rows, digits) + "\n")
    atomic_write_text(paths[2], latex_table(columns, rows, caption, f"tab:{stem}", digits))
    return paths
