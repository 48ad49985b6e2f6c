"""The KD-PINN table as markdown, for the README (kd-edge report ... --readme README.md)."""

import re
from pathlib import Path

from kd_edge.report.html import KD_HEADER, kd_row

BEGIN, END = "<!-- kd-pinn:begin", "<!-- kd-pinn:end -->"


def kd_pinn_markdown(summaries: list[dict]) -> str:
    def cell(v):
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.2e}" if v < 10 else f"{v:,.0f}"
        return str(v)

    lines = ["| " + " | ".join(KD_HEADER) + " |", "|---|" + "---:|" * (len(KD_HEADER) - 1)]
    lines += ["| " + " | ".join(cell(v) for v in kd_row(s)) + " |" for s in summaries]
    return "\n".join(lines)


def update_readme(readme: Path, summaries: list[dict], command: str) -> None:
    """Replace the block between the kd-pinn markers with the table and the command that made it."""
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        raise ValueError(f"{readme} has no '{BEGIN} ... -->' / '{END}' markers for the KD-PINN table")
    block = f"{BEGIN} ({command}) -->\n{kd_pinn_markdown(summaries)}\n{END}"
    readme.write_text(re.sub(re.escape(BEGIN) + r".*?" + re.escape(END), lambda _: block, text, flags=re.S))
