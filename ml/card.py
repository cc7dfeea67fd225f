"""Model cards: one Markdown and one HTML page per registered version, from the ethics record, the metrics,
the fairness table and the gate's decision. Logged as run artifacts (``model_card.md`` / ``model_card.html``).
"""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from ml.ethics import LoadedRecord
from ml.gate import GateDecision


def _md_table(frame: pd.DataFrame) -> str:
    # pandas.to_markdown needs the optional `tabulate`; a pipe table is five lines, so no extra dependency
    def cell(v):
        return f"{v:.3f}" if isinstance(v, float) else str(v)
    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def _answers(record: LoadedRecord) -> list[tuple[str, str]]:
    raw = record.raw
    purpose = raw.get("purpose") or {}
    lawful = raw.get("lawful_basis") or {}
    data = raw.get("data") or {}
    missing = "**MISSING**"
    return [
        ("Purpose", purpose.get("statement") or missing),
        ("Public benefit", purpose.get("public_benefit") or missing),
        ("Agreement purpose", purpose.get("agreement_purpose") or missing),
        ("Action following a prediction", raw.get("action_following_prediction") or missing),
        ("Lawful basis (Art. 6)", lawful.get("article_6") or missing),
        ("Art. 9 / DPA 2018 condition", lawful.get("article_9_or_dpa_condition") or missing),
        ("Feeds used", ", ".join(data.get("feeds") or []) or missing),
        ("Features", data.get("features") or missing),
        ("Excluded from inputs", ", ".join(data.get("excluded_features") or []) or "none"),
        ("Limitations", data.get("limitations") or missing),
        ("Human oversight", raw.get("human_oversight") or missing),
    ]


WHATIF_NOTE = ("At the project's team capacity (cases a month), the households reviewed each month are the top "
               "ones by risk; a true positive's outcome then happened. Losing a feed sets its features to zero "
               "for the same model (not retrained): an approximation (ml/whatif.py).")
WHATIF_TITLES = {"by_group": "At the team's capacity: true and false positives by group",
                 "thresholds": "Moving the threshold", "feeds": "Losing one feed (at the team's capacity)"}


def render(*, model: str, version: str | int, run_id: str, record: LoadedRecord, metrics: dict[str, float],
           fairness: pd.DataFrame, decision: GateDecision, splits: dict[str, str],
           what_would_happen: dict[str, pd.DataFrame] | None = None) -> tuple[str, str]:
    """Return (markdown, html) for one model version."""
    title = (record.raw.get("title") or model).strip()
    status = "PROMOTED to champion" if decision.promote else "NOT promoted"
    metric_rows = pd.DataFrame(sorted(metrics.items()), columns=["metric", "value"])
    checks = pd.DataFrame([(k, "pass" if v else "FAIL") for k, v in decision.checks.items()],
                          columns=["gate check", "result"])
    periods = pd.DataFrame(sorted(splits.items()), columns=["split", "months"])
    answers = _answers(record)
    thresholds = ((record.raw.get("fairness") or {}).get("thresholds")) or {}

    md = [f"# Model card: {model} v{version}", "", f"*{title}*", "",
          f"**Gate decision: {status}.** " + "; ".join(decision.reasons), "",
          f"MLflow run `{run_id}`; owner {record.raw.get('owner', '**MISSING**')}.", "",
          "## Ethics record (UK Data Ethics Framework)", ""]
    md += [f"- **{q}:** {a}" for q, a in answers]
    md += ["", "## Gate checks", "", _md_table(checks), "", "## Time-based splits", "", _md_table(periods),
           "", "## Metrics (held-out test period, with baselines)", "", _md_table(metric_rows), "",
           "## Fairness by group", "",
           "Thresholds: " + (", ".join(f"{k} = {v}" for k, v in thresholds.items()) or "**MISSING**"), "",
           _md_table(fairness), ""]
    whatif = {k: v for k, v in (what_would_happen or {}).items() if not v.empty}
    if whatif:
        md += ["## What would happen (held-out test period)", "", WHATIF_NOTE, ""]
        for name, table in whatif.items():
            md += [f"### {WHATIF_TITLES.get(name, name)}", "", _md_table(table), ""]
    markdown = "\n".join(md)

    esc = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(model)} v{version}</title>",
             "<style>body{font-family:sans-serif;max-width:60em;margin:auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:2px 6px}.fail{color:#b00}</style></head><body>",
             f"<h1>Model card: {esc(model)} v{version}</h1><p><em>{esc(title)}</em></p>",
             f"<p class='{'ok' if decision.promote else 'fail'}'><strong>Gate decision: {status}.</strong> "
             f"{esc('; '.join(decision.reasons))}</p><p>MLflow run <code>{esc(run_id)}</code></p>",
             "<h2>Ethics record (UK Data Ethics Framework)</h2><dl>"]
    parts += [f"<dt><strong>{esc(q)}</strong></dt><dd>{esc(str(a))}</dd>" for q, a in answers]
    parts += ["</dl><h2>Gate checks</h2>", checks.to_html(index=False), "<h2>Time-based splits</h2>",
              periods.to_html(index=False), "<h2>Metrics</h2>", metric_rows.to_html(index=False),
              "<h2>Fairness by group</h2>", f"<p>Thresholds: {esc(str(thresholds))}</p>",
              fairness.to_html(index=False, float_format=lambda v: f"{v:.3f}")]
    if whatif:
        parts += ["<h2>What would happen (held-out test period)</h2>", f"<p>{esc(WHATIF_NOTE)}</p>"]
        for name, table in whatif.items():
            parts += [f"<h3>{esc(WHATIF_TITLES.get(name, name))}</h3>",
                      table.to_html(index=False, float_format=lambda v: f"{v:.3f}")]
    parts.append("</body></html>")
    return markdown, "".join(parts)


def write(directory: Path, markdown: str, html_text: str) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    md_path, html_path = directory / "model_card.md", directory / "model_card.html"
    md_path.write_text(markdown, encoding="utf-8")
    html_path.write_text(html_text, encoding="utf-8")
    return md_path, html_path
