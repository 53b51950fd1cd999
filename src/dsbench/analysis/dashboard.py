"""A study's dashboard: one self-contained HTML page (plots inlined), for MLflow's viewer.

MLflow's artifact viewer shows an HTML artifact in a sandboxed frame that cannot fetch
neighbouring files, so images are embedded as data: URIs and the page has no scripts.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #1a1a1a; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table.comparison { border-collapse: collapse; font-size: 0.85em; }
table.comparison th, table.comparison td { padding: 3px 8px; border-bottom: 1px solid #ddd; }
table.comparison th { background: #f2f2f2; text-align: left; }
table.comparison td { text-align: right; white-space: nowrap; }
.figures { display: flex; flex-wrap: wrap; gap: 12px; }
.figures img { max-width: 48%; min-width: 420px; border: 1px solid #eee; }
.meta { color: #555; font-size: 0.85em; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; }
"""


def _image(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    alt = html.escape(path.stem.replace("_", " "))
    return f'<img alt="{alt}" title="{alt}" src="data:image/png;base64,{data}">'


def inline_code(text: str) -> str:
    """Markdown's `code` spans (the legend and provenance are written for Markdown) as HTML
    <code>, the rest escaped."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def render(
    *,
    experiment: str,
    description: str,
    table_html: str,
    legend: str,
    figures: list[Path],
    not_finished: list[str],
    study_reports: list[tuple[str, str]],
    counts: dict[str, int],
    provenance: str,
) -> str:
    """The page: what the study compares, the table, the plots, what failed, where from."""
    esc = html.escape
    summary = ", ".join(f"{v} {k}" for k, v in counts.items())
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>dsbench: {esc(experiment)}</title><style>{STYLE}</style></head><body>",
        f'<h1 id="dashboard-title">{esc(experiment)}: which downsampling, at what cost</h1>',
        f'<p class="meta">{esc(summary)}</p>',
    ]
    if description:
        parts.append(f"<pre>{esc(description)}</pre>")
    parts += [
        "<h2>Comparison by strategy</h2>",
        f'<p class="meta">{inline_code(legend)}</p>',
        table_html,
        "<h2>Plots</h2>",
        '<div class="figures">',
        *(_image(p) for p in figures),
        "</div>",
    ]
    for heading, markdown in study_reports:  # a study's own table (dsbench.hooks)
        parts += [f"<h2>{esc(heading)}</h2>", f"<pre>{esc(markdown)}</pre>"]
    parts.append("<h2>Runs that did not finish</h2>")
    if not_finished:
        parts += ["<ul>", *(f"<li>{inline_code(line)}</li>" for line in not_finished), "</ul>"]
    else:
        parts.append("<p>None: all runs finished.</p>")
    parts += [f'<p class="meta">{inline_code(provenance)}</p>', "</body></html>"]
    return "\n".join(parts) + "\n"
