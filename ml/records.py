"""Records generated from the truth in the repository, never written by hand.

``build_register_site(settings, out)`` writes a static transparency register:

- ``index.html`` — feeds and agreements (with expiry and status), projects (status, purpose, review date, the
  feasibility verdict), models (champion version, gate checks, fairness table), published releases (approval
  status of each file) and the head of the audit chain (``placelink audit --verify``);
- ``projects/<id>/dpia.md|html`` — a DPIA draft in the ICO template's sections, filled from the project, the
  feed contracts and its models' ethics records;
- ``projects/<id>/ethics.md|html`` — the Data Ethics Framework self-assessment summary, with the actions taken on
  flagged cases (override rate, observational outcome comparison);
- ``models/<model>/atrs.md|html`` — an Algorithmic Transparency Recording Standard record, tier 1 and tier 2.

Every text comes from ``orchestration/projects/*.yml``, ``orchestration/feeds/*.yml``, ``ml/models/*/`` and the
home (MLflow, governance, audit): change the source and regenerate. Aggregates and names only, no person data.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from ml.ethics import MODELS_DIR, load_record
from orchestration.lib.config import Settings
from orchestration.lib.governance.projects import PRINCIPLES, LoadedProject, ProjectRecord, load_register

esc = html.escape


def _md_table(df: pd.DataFrame) -> str:
    if df is None or df.empty:
        return "_none_"

    def cell(v):
        if isinstance(v, float):
            return "" if pd.isna(v) else f"{v:.3f}"
        return str(v).replace("|", "\\|").replace("\n", " ")
    return "\n".join(["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns),
                      *("| " + " | ".join(cell(v) for v in r) + " |" for r in df.itertuples(index=False))])


def _html_table(df: pd.DataFrame, table_id: str | None = None) -> str:
    if df is None or df.empty:
        return "<p><em>none</em></p>"
    out = df.to_html(index=False, na_rep="", float_format=lambda v: f"{v:.3f}", border=0)
    return out.replace("<table", f"<table id='{table_id}'", 1) if table_id else out


def _page(title: str, body: str, depth: int = 0) -> str:
    home = "../" * depth + "index.html"
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{esc(title)}</title><style>body{{font-family:sans-serif;max-width:75em;margin:1.5em auto;"
            "padding:0 1em}table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #bbb;"
            "padding:2px 6px;font-size:90%}h2{border-bottom:1px solid #ddd}.bad{color:#b00020}</style></head><body>"
            f"<p><a href='{home}'>Transparency register</a></p>{body}</body></html>")


def _md_to_html(md: str) -> str:
    """The tiny Markdown subset our records use (headings, bullets, pipe tables, paragraphs)."""
    out, table, in_list = [], [], False

    def flush_table():
        nonlocal table
        if table:
            rows = [r.strip().strip("|").split(" | ") for r in table if not set(r.strip()) <= set("|-")]
            head, *body = rows
            out.append("<table><tr>" + "".join(f"<th>{esc(c)}</th>" for c in head) + "</tr>"
                       + "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in body)
                       + "</table>")
            table = []

    for line in md.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        flush_table()
        if line.startswith("- "):
            if not in_list:
                out.append("<ul>")
                in_list = True
            out.append(f"<li>{esc(line[2:])}</li>")
            continue
        if in_list:
            out.append("</ul>")
            in_list = False
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{esc(line.lstrip('#').strip())}</h{level}>")
        elif line.strip():
            out.append(f"<p>{esc(line)}</p>")
    flush_table()
    if in_list:
        out.append("</ul>")
    return "\n".join(out)


# --- facts gathered once -------------------------------------------------------------------------------------

@dataclass
class ModelFacts:
    name: str
    project: str | None
    ethics: dict
    spec: dict
    champion: str | None = None
    run_id: str | None = None
    checks: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    fairness: pd.DataFrame = field(default_factory=pd.DataFrame)


def model_facts(settings: Settings) -> list[ModelFacts]:
    """Each model's ethics record and spec, and its champion's gate checks, metrics and fairness table (MLflow)."""
    out = []
    client = None
    for path in sorted(MODELS_DIR.glob("*/ethics.yml")):
        name = path.parent.name
        ethics = load_record(path).raw
        spec = yaml.safe_load((path.parent / "model.yml").read_text(encoding="utf-8")) or {}
        facts = ModelFacts(name, ethics.get("project"), ethics, spec)
        if (settings.mlflow_dir / "mlflow.db").exists():
            try:
                from ml import registry

                client = client or registry.configure(settings)
                version = registry.version_by_alias(client, spec.get("registered_model", name), registry.CHAMPION)
            except Exception:  # noqa: BLE001 - no registry yet: the record says "not deployed"
                version = None
            if version is not None:
                facts.champion, facts.run_id = str(version.version), version.run_id
                facts.checks = {k.removeprefix("gate."): v for k, v in (version.tags or {}).items()
                                if k.startswith("gate.") and k not in ("gate.decision", "gate.promoted")}
                run = client.get_run(version.run_id)
                facts.metrics = {k: v for k, v in run.data.metrics.items() if not k.startswith("fairness.")}
                try:
                    with tempfile.TemporaryDirectory() as tmp:
                        local = client.download_artifacts(version.run_id, "fairness/fairness_by_group.csv", tmp)
                        facts.fairness = pd.read_csv(local)
                except Exception:  # noqa: BLE001 - an older run without the CSV: the table is left out
                    pass
        out.append(facts)
    return out


# --- DPIA (ICO template sections) ------------------------------------------------------------------------------

def dpia_markdown(project: ProjectRecord, contracts, models: list[ModelFacts], check=None) -> str:
    feeds = {f.source: f for f in contracts.feeds()}
    rows = []
    for need in project.data.feeds:
        f = feeds.get(need.feed)
        a = f.agreement if f else None
        rows.append({"feed": need.feed, "agreement": a.id if a else "NONE", "columns": ", ".join(need.columns),
                     "special category": "yes" if a and a.lawful_basis and a.lawful_basis.special_category else "no",
                     "retention (months)": a.retention_months if a else "", "agreement ends": str(a.valid_to or "") if a else ""})
    mine = [m for m in models if m.project == project.id]
    risks = [
        ("Re-identification of pseudonymised people", "pseudonymisation (HMAC), role-separated zones, re-identification "
         f"only by the {project.action.role} role for flagged cases up to capacity, audited"),
        ("Unfair treatment of a group", "fairness thresholds gate promotion; coverage against population in "
         "`placelink project check`; protected characteristics excluded as inputs"),
        ("Decisions made on a score alone", f"{project.action.decision.strip()} Practitioners record agree/"
         "disagree/action/no action; override rates are reported"),
        ("Use beyond the agreed purpose", f"purpose {project.purpose} checked against every agreement at training, "
         "promotion and scoring; the project stops at its review date"),
        ("Disclosure in outputs", "disclosure control and four-eyes output checking on every published file"),
    ]
    if check is not None:
        risks += [(f"Feasibility: {f.text}", "see the project check") for f in check.findings
                  if f.level != "ok" and f.section == "coverage"][:5]
    md = [f"# DPIA draft: {project.title}", "",
          f"Project {project.id}; lead {project.lead}. Generated {dt.date.today()} from the project register, the "
          "feed contracts and the models' ethics records (ICO DPIA template sections). A draft for the DPO: it "
          "records what the repository enforces, not a legal opinion.", "",
          "## Step 1: Identify the need for a DPIA", "",
          f"{project.problem.statement} It processes "
          + ("person-level (pseudonymised) data of people known to public services, some of them vulnerable, and "
             "matches data sets from several partners, which the ICO lists as likely high-risk processing."
             if project.person_level else "aggregated counts per area built from partners' person-level data."), "",
          "## Step 2: Describe the processing", "",
          "### Nature", "", f"Data needed: {project.data.history_months} months of the feeds below; population: "
          f"{project.data.population}.", "", _md_table(pd.DataFrame(rows)), "",
          "### Scope", "", f"Project life {project.start} to {project.valid_to}; review by {project.review_date}. "
          f"The team ({project.action.team}) acts on at most {project.action.capacity_per_month} cases a month.", "",
          "### Context", "", project.problem.why_it_matters, "",
          "### Purposes", "", f"Agreement purpose `{project.purpose}`. Decision informed: {project.action.decision} "
          f"Outcome measure: {project.outcome.measure}.", "",
          "## Step 3: Consultation process", "",
          *[f"- {a.board}: {a.who}, {a.when}" + (f" (minute {a.minute})" if a.minute else "") for a in project.approvals],
          f"- {PRINCIPLES['diverse_expertise']}: {project.ethics_assessment['diverse_expertise'].evidence}", "",
          "## Step 4: Assess necessity and proportionality", "",
          f"- Lawful basis (Art. 6): {project.lawful_basis.article_6}",
          f"- Art. 9 / DPA 2018 condition: {project.lawful_basis.article_9_or_dpa_condition}",
          f"- Can data help: {project.problem.can_data_help}",
          "- Data minimisation: only the columns above, each allowed by its agreement; ingest drops the rest.",
          f"- Evaluation: {project.outcome.evaluation}", "",
          "## Step 5: Identify and assess risks", "",
          _md_table(pd.DataFrame([{"risk": r, "likelihood/severity": "to be scored by the DPO"} for r, _ in risks])),
          "", "## Step 6: Identify measures to reduce risk", "",
          _md_table(pd.DataFrame([{"risk": r, "measure in the platform": m} for r, m in risks])), "",
          "## Step 7: Sign off and outcomes", "",
          f"- Status: {project.status}; approvals as in Step 3; next review {project.review_date}.",
          "- Models: " + (", ".join(f"{m.name} (champion v{m.champion})" if m.champion else f"{m.name} (not deployed)"
                                   for m in mine) or "none"),
          "- DPO advice and residual risk: _to be completed by the DPO_", ""]
    return "\n".join(md)


def ethics_markdown(project: ProjectRecord, actions_md: str | None) -> str:
    rows = pd.DataFrame([{"principle": label, "score (0-5)": project.ethics_assessment[k].score,
                          "evidence": project.ethics_assessment[k].evidence} for k, label in PRINCIPLES.items()])
    total = int(rows["score (0-5)"].sum())
    md = [f"# Data Ethics Framework self-assessment: {project.title}", "",
          f"Project {project.id}, status {project.status}, total {total}/{5 * len(rows)}.", "", _md_table(rows), "",
          "## From prediction to action", "", actions_md or "No cases opened yet.", ""]
    return "\n".join(md)


# --- ATRS -----------------------------------------------------------------------------------------------------

def atrs_markdown(m: ModelFacts, project: ProjectRecord | None) -> str:
    e = m.ethics
    purpose = e.get("purpose") or {}
    data = e.get("data") or {}
    thresholds = (e.get("fairness") or {}).get("thresholds") or {}
    team = project.action.team if project else "**no project**"
    md = [f"# Algorithmic Transparency Recording Standard: {e.get('title', m.name)}", "",
          f"Generated {dt.date.today()} from ml/models/{m.name}/ethics.yml, model.yml, the project register and "
          "the model registry.", "",
          "## Tier 1", "",
          f"- **Name:** {m.name}",
          f"- **Description:** {purpose.get('statement', '')}",
          f"- **How it works:** a {m.spec.get('kind')} model over {m.spec.get('unit')}, predicting "
          f"{m.spec.get('outcome')} over {m.spec.get('horizon_months')} months from partners' records "
          f"({', '.join(data.get('feeds') or [])}).",
          f"- **Why it is used:** {purpose.get('public_benefit', '')}",
          f"- **How it is deployed:** {e.get('action_following_prediction', '')}",
          f"- **Contact:** {e.get('owner', '')}", "",
          "## Tier 2", "",
          "### Owner and responsibility", "",
          f"- Organisation and team: {e.get('owner', '')}; acting team: {team}",
          f"- Project: {m.project or 'none'}" + (f" ({project.title}), approved by "
                                                 + "; ".join(f"{a.board} {a.when}" for a in project.approvals)
                                                 if project else ""),
          "- External supplier: none (open-source platform operated by the partnership)", "",
          "### Description and rationale", "",
          f"- Problem: {project.problem.statement if project else ''}",
          f"- Benefit: {purpose.get('public_benefit', '')}",
          f"- Can data help: {project.problem.can_data_help if project else ''}", "",
          "### Decision-making process", "",
          f"- Process integration: {project.action.decision if project else ''}",
          f"- Frequency and scale: scored monthly; the team reviews up to "
          f"{project.action.capacity_per_month if project else '?'} cases a month"
          + (f" at risk >= {project.action.threshold}" if project and project.action.threshold is not None else ""),
          f"- Human decisions and review: {e.get('human_oversight', '')}",
          "- Appeals and review: practitioners' decisions (agree/disagree/action/no action) and outcomes are "
          "recorded and reported with the override rate", "",
          "### Tool specification", "",
          f"- Phase: {'production (champion v' + m.champion + ')' if m.champion else 'not deployed'}",
          "- Maintenance: retrained weekly behind the ethics gate; promotion only if every gate check passes", "",
          "### Model specification", "",
          f"- Model: {m.spec.get('registered_model', m.name)}, version {m.champion or 'none'}",
          f"- Task: {m.spec.get('kind')} of {m.spec.get('outcome')}",
          f"- Input data: {data.get('features', '')}",
          f"- Excluded from inputs: {', '.join(data.get('excluded_features') or []) or 'none'}",
          f"- Limitations: {data.get('limitations', '')}", "",
          "Gate checks of the champion:", "",
          _md_table(pd.DataFrame(sorted(m.checks.items()), columns=["check", "passed"])), "",
          "Metrics (held-out period):", "",
          _md_table(pd.DataFrame(sorted(m.metrics.items()), columns=["metric", "value"])), "",
          "### Risks, mitigations and impact assessments", "",
          f"- DPIA: generated for project {m.project} (projects/{m.project}/dpia.html)" if m.project else "- DPIA: none",
          "- Fairness thresholds: " + (", ".join(f"{k} = {v}" for k, v in thresholds.items()) or "none"), "",
          "Fairness by group (champion):", "", _md_table(m.fairness), ""]
    return "\n".join(md)


# --- the site ----------------------------------------------------------------------------------------------------

def _write(folder: Path, stem: str, title: str, md: str, depth: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}.md").write_text(md, encoding="utf-8")
    path = folder / f"{stem}.html"
    path.write_text(_page(title, _md_to_html(md), depth), encoding="utf-8")
    return path


def build_register_site(settings: Settings, out: Path | None = None, *, projects_dir=None, feeds_dir=None,
                        today: dt.date | None = None) -> Path:
    """Write the transparency register under ``out`` (default ``<home>/published_register``); returns index.html."""
    from orchestration.lib.contracts import load_contracts
    from orchestration.lib.governance.actions import summary
    from orchestration.lib.governance.audit import verify
    from orchestration.lib.governance.outputs import release_status
    from orchestration.lib.governance.project_check import check_project
    from orchestration.lib.governance.register import agreements_register

    today = today or dt.date.today()
    out = Path(out) if out else settings.home / "transparency_register"
    out.mkdir(parents=True, exist_ok=True)
    contracts = load_contracts(feeds_dir)
    register: dict[str, LoadedProject] = load_register(projects_dir)
    models = model_facts(settings)

    project_rows = []
    for pid, loaded in register.items():
        row = {"project": f"<a href='projects/{esc(pid)}/dpia.html'>{esc(pid)}</a>", "title": esc(loaded.title),
               "status": esc(str(loaded.raw.get("status", "?"))), "purpose": esc(str(loaded.purpose or "")),
               "review date": esc(str(loaded.raw.get("review_date", ""))), "feasibility": "", "records": ""}
        if not loaded.complete:
            row["feasibility"] = f"<span class='bad'>incomplete ({len(loaded.problems)} problem(s))</span>"
            project_rows.append(row)
            continue
        record = loaded.record
        check = check_project(pid, settings, projects_dir=projects_dir, today=today, contracts=contracts)
        row["feasibility"] = ("GO" if check.go else "<span class='bad'>NO-GO</span>: "
                              + esc("; ".join(f.text for f in check.reasons[:3]))
                              + (" ..." if len(check.reasons) > 3 else ""))
        folder = out / "projects" / pid
        _write(folder, "dpia", f"DPIA draft {pid}", dpia_markdown(record, contracts, models, check), 2)
        actions = summary(settings, pid) if settings.governance_dir.exists() else None
        _write(folder, "ethics", f"Ethics self-assessment {pid}",
               ethics_markdown(record, actions.markdown() if actions and actions.opened else None), 2)
        check.write(folder)
        row["records"] = (f"<a href='projects/{esc(pid)}/dpia.html'>DPIA</a> · "
                          f"<a href='projects/{esc(pid)}/ethics.html'>ethics</a> · "
                          f"<a href='projects/{esc(pid)}/check.html'>check</a>")
        project_rows.append(row)

    model_rows, fairness_html = [], []
    for m in models:
        loaded = register.get(m.project or "")
        record = loaded.record if loaded and loaded.complete else None
        _write(out / "models" / m.name, "atrs", f"ATRS {m.name}", atrs_markdown(m, record), 2)
        acted = summary(settings, m.project) if m.project and settings.governance_dir.exists() else None
        model_rows.append({"model": f"<a href='models/{esc(m.name)}/atrs.html'>{esc(m.name)}</a>",
                           "project": esc(m.project or "none"), "champion": esc(m.champion or "not deployed"),
                           "cases decided": acted.decided if acted else 0,
                           "override rate": (f"{acted.override_rate:.0%}" if acted and acted.decided else "n/a"),
                           "gate checks": esc(", ".join(f"{k}={v}" for k, v in sorted(m.checks.items())))})
        fairness_html.append(f"<h3>Fairness by group: {esc(m.name)}</h3>"
                             + _html_table(m.fairness, f"fairness-{m.name}"))

    agreements = pd.DataFrame(agreements_register(feeds_dir, today=today))
    if not agreements.empty:
        agreements = agreements[["partner", "feed", "agreement_id", "purposes", "valid_to", "retention_months",
                                 "status"]].rename(columns={"valid_to": "expires"})
    releases = pd.DataFrame(release_status(settings)) if settings.published.exists() else pd.DataFrame()
    if not releases.empty:
        releases = releases[["file", "status", "approved_by", "approved_at", "sha256"]]
    audit = verify(settings)
    head = settings.governance_dir / "audit_head.json"
    head_text = json.loads(head.read_text()) if head.exists() else {}

    body = [f"<h1>Transparency register</h1><p>Generated {esc(str(today))} from the repository's contracts, project "
            "register and ethics records, and this home's model registry, releases and audit chain.</p>",
            "<h2 id='feeds'>Feeds and agreements</h2>", _html_table(agreements, "agreements"),
            "<h2 id='projects'>Projects</h2>",
            pd.DataFrame(project_rows).to_html(index=False, escape=False, border=0).replace(
                "<table", "<table id='projects-table'", 1) if project_rows else "<p>none</p>",
            "<h2 id='models'>Models</h2>",
            pd.DataFrame(model_rows).to_html(index=False, escape=False, border=0).replace(
                "<table", "<table id='models-table'", 1) if model_rows else "<p>none</p>",
            *fairness_html,
            "<h2 id='releases'>Published releases</h2>", _html_table(releases, "releases"),
            "<h2 id='audit'>Audit chain</h2>",
            f"<p id='audit-head'>{'intact' if audit.ok else '<span class=bad>TAMPERED</span>'}: "
            f"{audit.rows} events; head hash <code>{esc(str(head_text.get('hash', audit.head_hash or 'none')))}</code>"
            f" (seq {esc(str(head_text.get('seq', '')))})</p>"]
    index = out / "index.html"
    index.write_text(_page("Transparency register", "\n".join(body)), encoding="utf-8")
    return index
