"""``placelink project check <id>``: the feasibility and scoping report of one project, go or no-go with reasons.

It asks what the partnership's first lesson asks — *do we have the data, may we use it, and who is missing?*:

1. **register** — the file is complete (every field named with its fix otherwise);
2. **agreements** — every feed it needs has an agreement that allows this purpose and these columns for the
   project's whole life (``start`` .. ``valid_to``), with a lawful basis, and the project lists it;
3. **ethics self-assessment** — every Data Ethics Framework principle scores at least ``MIN_PRINCIPLE_SCORE``;
4. **history** — the warehouse holds at least ``data.history_months`` months of each feed;
5. **quality** — completeness, validity and link rates from the feed scorecard (``quality.feed_scorecard``);
6. **coverage** — who is in the data by age band, sex, ethnicity group and deprivation quintile, against the
   population: deprivation from the LSOA population reference; age, sex and ethnicity from a population table
   where the home has one (the synthetic county's ``truth/people.parquet``; a real deployment puts ONS Census
   tables in ``reference/population_by_group.csv`` with columns ``dimension, grp, population``).

A no-go finding stops the project; a warning is for the board to weigh. Aggregates only: no row, key or value of
a partner's file appears in the report.
"""

from __future__ import annotations

import datetime as dt
import html
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from orchestration.lib.config import Settings
from orchestration.lib.contracts import load_contracts
from orchestration.lib.errors import PlacelinkError
from orchestration.lib.governance.projects import (
    MIN_PRINCIPLE_SCORE,
    PRINCIPLES,
    LoadedProject,
    ProjectRecord,
    find_project,
)

NO_GO, WARN, OK = "no-go", "warning", "ok"
#: a group this much rarer in the data than in the population is flagged as under-covered
UNDER_COVERAGE_RATIO = 0.8
#: groups smaller than this share of the population are listed but not flagged (too noisy)
MIN_POPULATION_SHARE = 0.02
COMPLETENESS_WARN = 0.8


@dataclass(frozen=True)
class Finding:
    section: str
    level: str
    text: str
    fix: str | None = None


@dataclass
class CheckReport:
    project_id: str
    title: str
    checked_on: dt.date
    findings: list[Finding] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def go(self) -> bool:
        return not any(f.level == NO_GO for f in self.findings)

    @property
    def reasons(self) -> list[Finding]:
        return [f for f in self.findings if f.level == NO_GO]

    def add(self, section: str, level: str, text: str, fix: str | None = None) -> None:
        self.findings.append(Finding(section, level, text, fix))

    # --- rendering ---------------------------------------------------------------------------------------
    def markdown(self) -> str:
        verdict = "**GO**" if self.go else "**NO-GO**"
        out = [f"# Project check: {self.project_id}", "", f"{self.title}", "",
               f"Checked on {self.checked_on}. Verdict: {verdict}"
               + ("" if self.go else f" — {len(self.reasons)} reason(s):"), ""]
        for f in self.reasons:
            out.append(f"- {f.section}: {f.text}" + (f" (fix: {f.fix})" if f.fix else ""))
        for section in SECTIONS:
            rows = [f for f in self.findings if f.section == section]
            table = self.tables.get(section)
            if not rows and table is None:
                continue
            out += ["", f"## {section}", ""]
            for f in rows:
                out.append(f"- [{f.level}] {f.text}" + (f" (fix: {f.fix})" if f.fix else ""))
            if table is not None and not table.empty:
                out += ["", _md_table(table)]
        return "\n".join(out) + "\n"

    def html(self) -> str:
        colour = {NO_GO: "#b00020", WARN: "#8a6d00", OK: "#1b5e20"}
        parts = [f"<h1>Project check: {html.escape(self.project_id)}</h1>", f"<p>{html.escape(self.title)}</p>",
                 f"<p>Checked on {self.checked_on}. Verdict: <strong id='verdict'>"
                 f"{'GO' if self.go else 'NO-GO'}</strong></p>"]
        if self.reasons:
            parts.append("<ul id='reasons'>" + "".join(
                f"<li>{html.escape(f.section)}: {html.escape(f.text)}"
                + (f" <em>(fix: {html.escape(f.fix)})</em>" if f.fix else "") + "</li>" for f in self.reasons)
                + "</ul>")
        for section in SECTIONS:
            rows = [f for f in self.findings if f.section == section]
            table = self.tables.get(section)
            if not rows and table is None:
                continue
            parts.append(f"<h2>{html.escape(section)}</h2><ul>" + "".join(
                f"<li><span style='color:{colour[f.level]}'>[{f.level}]</span> {html.escape(f.text)}"
                + (f" <em>(fix: {html.escape(f.fix)})</em>" if f.fix else "") + "</li>" for f in rows) + "</ul>")
            if table is not None and not table.empty:
                parts.append(table.to_html(index=False, na_rep="", float_format=lambda v: f"{v:.3f}"))
        return page(f"Project check {self.project_id}", "\n".join(parts))

    def write(self, folder: Path) -> tuple[Path, Path]:
        folder.mkdir(parents=True, exist_ok=True)
        md, htm = folder / "check.md", folder / "check.html"
        md.write_text(self.markdown(), encoding="utf-8")
        htm.write_text(self.html(), encoding="utf-8")
        return md, htm


SECTIONS = ("register", "approval and dates", "agreements", "ethics self-assessment", "history", "quality",
            "coverage", "actions")


def page(title: str, body: str) -> str:
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title><style>body{{font-family:sans-serif;max-width:70em;margin:2em auto}}"
            "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}</style></head>"
            f"<body>{body}</body></html>")


def _md_table(df: pd.DataFrame) -> str:
    def cell(v):
        if isinstance(v, float):
            return "" if pd.isna(v) else f"{v:.3f}"
        return str(v).replace("|", "\\|")
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "---|" * len(df.columns)
    return "\n".join([head, rule, *("| " + " | ".join(cell(v) for v in row) + " |"
                                    for row in df.itertuples(index=False))])


def project_folder(settings: Settings, project_id: str) -> Path:
    return settings.governance_dir / "projects" / project_id


# --- the checks ----------------------------------------------------------------------------------------------

def check_project(project_id: str, settings: Settings, *, projects_dir: str | Path | None = None,
                  feeds_dir: str | Path | None = None, today: dt.date | None = None, contracts=None) -> CheckReport:
    """``contracts``: already loaded feed contracts (``load_contracts``), when checking several projects."""
    today = today or dt.date.today()
    loaded = find_project(project_id, projects_dir)
    report = CheckReport(project_id, loaded.title, today)
    if not loaded.complete:
        for where, what, fix in loaded.problems:
            report.add("register", NO_GO, f"{where.split(': ', 1)[-1]}: {what}", fix)
        return report
    record = loaded.record
    assert record is not None
    report.add("register", OK, f"{loaded.path.name} is complete")
    _dates(report, record, today)
    _agreements(report, record, contracts or load_contracts(feeds_dir), today)
    _ethics(report, record)
    if not settings.warehouse_db.exists():
        report.add("history", NO_GO, f"no warehouse at {settings.warehouse_db}",
                   "run `placelink refresh` so history, quality and coverage can be checked")
        return report
    con = duckdb.connect(str(settings.warehouse_db), read_only=True)
    try:
        _history_and_quality(report, record, con)
        _coverage(report, record, con, settings)
    finally:
        con.close()
    _actions(report, settings)
    return report


def _actions(report: CheckReport, settings: Settings) -> None:
    """Flagged cases the team opened and decided: override rate and outcomes (observational)."""
    from orchestration.lib.governance.actions import summary

    done = summary(settings, report.project_id)
    if not done.opened:
        return
    rate = f"{done.override_rate:.0%}" if done.decided else "n/a"
    report.add("actions", OK, f"{done.opened} case(s) opened, {done.decided} decided; override rate {rate} "
                              "(disagree or no action); outcomes below are observational, not the effect of acting")
    report.tables["actions"] = done.outcomes


def _dates(report: CheckReport, record: ProjectRecord, today: dt.date) -> None:
    s = "approval and dates"
    if record.status != "approved":
        report.add(s, WARN, f"status is {record.status}: nothing may be trained, scored or re-identified for it "
                            "until a board approves it")
    else:
        who = "; ".join(f"{a.who} ({a.board}, {a.when})" for a in record.approvals)
        report.add(s, OK, f"approved by {who}")
    if today > record.valid_to:
        report.add(s, NO_GO, f"the project ended on {record.valid_to}", "extend valid_to with the board's approval")
    if today > record.review_date:
        report.add(s, NO_GO, f"the review date {record.review_date} has passed: scoring has stopped",
                   "hold the review and record it under approvals, then set the next review_date")
    elif record.review_date > record.valid_to:
        report.add(s, WARN, f"review_date {record.review_date} is after the project ends ({record.valid_to})")


def _agreements(report: CheckReport, record: ProjectRecord, contracts, today: dt.date) -> None:
    s = "agreements"
    feeds = {f.source: f for f in contracts.feeds()}
    rows, used = [], set()
    for need in record.data.feeds:
        where = f"data.feeds[{need.feed}]"
        feed = feeds.get(need.feed)
        if feed is None:
            report.add(s, NO_GO, f"{where}: no feed contract for {need.feed}",
                       f"use one of {sorted(feeds)} or agree a new feed")
            continue
        a = feed.agreement
        used.add(a.id)
        refusals = []
        if record.purpose not in a.purposes:
            refusals.append(f"agreement {a.id} does not allow purpose {record.purpose!r} (it allows {a.purposes})")
            report.add(s, NO_GO, f"{where}: {refusals[-1]}",
                       f"remove the feed, or agree {record.purpose} with {feed.partner} ({a.contact or 'the partner'}) "
                       "and add it to agreement.purposes in its contract")
        extra = [c for c in need.columns if c not in a.allowed_columns]
        if extra:
            refusals.append(f"columns {extra} are not in agreement {a.id}'s allowed_columns")
            report.add(s, NO_GO, f"{where}.columns: {refusals[-1]}",
                       "remove them from the project, or agree them with the partner")
        if a.valid_from and a.valid_from > record.start:
            refusals.append(f"agreement {a.id} starts on {a.valid_from}, after the project starts ({record.start})")
            report.add(s, NO_GO, f"{where}: {refusals[-1]}", "move the project's start or the agreement's")
        if a.valid_to and a.valid_to < record.valid_to:
            refusals.append(f"agreement {a.id} expires on {a.valid_to}, before the project ends ({record.valid_to})")
            report.add(s, NO_GO, f"{where}: {refusals[-1]}",
                       f"renew agreement {a.id} to cover {record.valid_to}, or end the project (valid_to) by "
                       f"{a.valid_to}")
        for problem in a.problems(today):
            if "expired" in problem and a.valid_to and a.valid_to < record.valid_to:
                continue  # said above, with the project's dates
            refusals.append(problem)
            report.add(s, NO_GO, f"{where}: {problem}", "renew or complete the agreement in the feed contract")
        if a.id not in record.agreements:
            refusals.append(f"the project does not list agreement {a.id}")
            report.add(s, NO_GO, f"project.agreements: {refusals[-1]}", f"add {a.id} to agreements")
        rows.append({"feed": need.feed, "agreement": a.id, "purposes": ", ".join(a.purposes),
                     "valid_to": str(a.valid_to or ""), "columns": len(need.columns),
                     "verdict": "refused: " + "; ".join(refusals) if refusals else "allowed"})
    for extra in sorted(set(record.agreements) - used):
        report.add(s, WARN, f"project.agreements lists {extra}, which none of its feeds uses",
                   "remove it, or add the feed it covers")
    if rows and not any(f.level == NO_GO and f.section == s for f in report.findings):
        report.add(s, OK, f"every feed's agreement allows {record.purpose!r} and the columns until {record.valid_to}")
    report.tables[s] = pd.DataFrame(rows)


def _ethics(report: CheckReport, record: ProjectRecord) -> None:
    s = "ethics self-assessment"
    rows = []
    for key, label in PRINCIPLES.items():
        score = record.ethics_assessment[key]
        rows.append({"principle": label, "score": score.score, "evidence": score.evidence})
        if score.score < MIN_PRINCIPLE_SCORE:
            report.add(s, NO_GO, f"ethics_assessment.{key} scores {score.score}/5 (at least {MIN_PRINCIPLE_SCORE} "
                                 "is needed)", "address the gap the evidence describes and re-score with the panel")
    total = sum(r["score"] for r in rows)
    report.add(s, OK if all(r["score"] >= MIN_PRINCIPLE_SCORE for r in rows) else WARN,
               f"total {total}/{5 * len(rows)}")
    report.tables[s] = pd.DataFrame(rows)


def _exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    schema, name = table.split(".")
    return bool(con.execute("select count(*) from information_schema.tables where table_schema = ? and "
                            "table_name = ?", [schema, name]).fetchone()[0])


def _history_and_quality(report: CheckReport, record: ProjectRecord, con: duckdb.DuckDBPyConnection) -> None:
    if not _exists(con, "quality.feed_scorecard"):
        report.add("history", NO_GO, "no feed scorecard in the warehouse (quality.feed_scorecard)",
                   "run `placelink refresh` (or `placelink quality`)")
        return
    card = con.execute("select * from quality.feed_scorecard").df()
    rows = []
    for need in record.data.feeds:
        partner, feed = need.feed.split(".")
        f = card[(card["partner"] == partner) & (card["feed"] == feed)].sort_values("month")
        months = int((f.get("rows_loaded", f.get("rows_received")) > 0).sum()) if not f.empty else 0
        if months < record.data.history_months:
            report.add("history", NO_GO, f"data.feeds[{need.feed}]: the warehouse holds {months} month(s); the "
                                         f"project needs {record.data.history_months}",
                       "wait for more monthly drops, ask the partner for a back-file, or lower data.history_months")
        recent = f.tail(record.data.history_months)
        row = {"feed": need.feed, "months": months, "needed": record.data.history_months}
        for m in ("completeness", "validity", "person_linked_rate", "address_match_rate", "quarantine_rate"):
            row[m] = float(recent[m].mean()) if m in recent and not recent.empty else float("nan")
        if row["completeness"] == row["completeness"] and row["completeness"] < COMPLETENESS_WARN:
            report.add("quality", WARN, f"{need.feed}: completeness {row['completeness']:.2f} over the last "
                                        f"{len(recent)} months is below {COMPLETENESS_WARN}")
        rows.append(row)
    if not any(f.section == "history" and f.level == NO_GO for f in report.findings):
        report.add("history", OK, f"every feed has at least {record.data.history_months} months")
    report.add("quality", OK, "means over the months the project would use (quality.feed_scorecard)")
    report.tables["quality"] = pd.DataFrame(rows)


def _age_band(age: pd.Series) -> pd.Series:
    from orchestration.lib.feeds.warehouse_sources import _AGE_BANDS

    out = pd.Series("75+", index=age.index, dtype=object)
    for upper, band in reversed(_AGE_BANDS):
        out[age < upper] = band
    return out


def population_by_group(settings: Settings, con: duckdb.DuckDBPyConnection) -> tuple[pd.DataFrame, str]:
    """``dimension, grp, population`` and where it came from (see the module docstring)."""
    parts, sources = [], []
    ref = settings.reference / "population_by_group.csv"
    if ref.exists():
        parts.append(pd.read_csv(ref, dtype={"grp": str}))
        sources.append(str(ref.name))
    elif (settings.truth / "people.parquet").exists():
        people = pd.read_parquet(settings.truth / "people.parquet",
                                 columns=["date_of_birth", "sex", "ethnicity_group", "died_month"])
        people = people[people["died_month"] >= people["died_month"].max()]  # alive at the end
        age = (pd.Timestamp(dt.date.today()) - pd.to_datetime(people["date_of_birth"])).dt.days // 365
        for dim, values in (("sex", people["sex"]), ("ethnicity_group", people["ethnicity_group"]),
                            ("age_band", _age_band(age))):
            counts = values.value_counts().rename_axis("grp").reset_index(name="population")
            counts.insert(0, "dimension", dim)
            parts.append(counts)
        sources.append("the synthetic county's population (truth/people.parquet)")
    if _exists(con, "marts.dim_lsoa") and _exists(con, "staging.stg_reference__lsoa_population"):
        dep = con.execute("""
            with latest as (select lsoa_code, population from staging.stg_reference__lsoa_population
                            qualify month = max(month) over ())
            select 'deprivation_quintile' as dimension, cast((d.imd_decile + 1) // 2 as varchar) as grp,
                   sum(l.population) as population
            from latest l join marts.dim_lsoa d using (lsoa_code) group by 2""").df()
        parts.append(dep)
        sources.append("LSOA population reference with IMD")
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["dimension", "grp", "population"])
    return frame, "; ".join(sources) or "none"


def _coverage(report: CheckReport, record: ProjectRecord, con: duckdb.DuckDBPyConnection,
              settings: Settings) -> None:
    s = "coverage"
    if not _exists(con, "intermediate.int_events_joined_to_places"):
        report.add(s, WARN, "no events table (intermediate.int_events_joined_to_places): coverage not measured")
        return
    pairs = [tuple(f.split(".")) for f in record.feeds]
    values = ", ".join(f"('{p}', '{f}')" for p, f in pairs)
    people = con.execute(f"""
        with ev as (
            select e.person_key, e.sex, e.age_band, e.ethnicity_group, e.event_date, d.imd_decile
            from intermediate.int_events_joined_to_places e
            join (values {values}) as want(partner, feed) using (partner, feed)
            left join marts.dim_lsoa d using (lsoa_code)
            where e.person_key is not null)
        select person_key, arg_max(sex, event_date) as sex, arg_max(age_band, event_date) as age_band,
               arg_max(ethnicity_group, event_date) as ethnicity_group,
               cast((arg_max(imd_decile, event_date) + 1) // 2 as varchar) as deprivation_quintile
        from ev group by 1""").df()
    population, source = population_by_group(settings, con)
    rows = []
    for dim in ("age_band", "sex", "ethnicity_group", "deprivation_quintile"):
        seen = people[dim].fillna("unknown").value_counts()
        pop = population[population["dimension"] == dim].set_index("grp")["population"].astype(float)
        # shares among people whose group is recorded, as the population's are; the unknown row is a share of all
        unknown = {g for g in seen.index if str(g).lower() in ("unknown", "u", "not stated")} - set(pop.index)
        known_total = max(1, int(seen.drop(list(unknown)).sum()))
        for grp in sorted(set(seen.index) | set(pop.index), key=str):
            n = int(seen.get(grp, 0))
            data_share = n / (max(1, len(people)) if grp in unknown else known_total)
            pop_share = float(pop.get(grp, float("nan")) / pop.sum()) if len(pop) else float("nan")
            ratio = data_share / pop_share if pop_share == pop_share and pop_share > 0 else float("nan")
            rows.append({"dimension": dim, "group": grp, "people_in_data": n, "data_share": data_share,
                         "population_share": pop_share, "coverage_ratio": ratio})
            if ratio == ratio and pop_share >= MIN_POPULATION_SHARE and ratio < UNDER_COVERAGE_RATIO:
                report.add(s, WARN, f"{dim} {grp}: {data_share:.1%} of the people in the data against "
                                    f"{pop_share:.1%} of the population (ratio {ratio:.2f}): under-covered",
                           "state it in the DPIA and the model card's limitations; check fairness for this group")
    report.add(s, OK, f"{len(people)} people in the project's feeds; population from {source}")
    report.tables[s] = pd.DataFrame(rows)


def check_or_raise(project_id: str, settings: Settings, **kwargs) -> CheckReport:
    report = check_project(project_id, settings, **kwargs)
    if not report.go:
        first = report.reasons[0]
        raise PlacelinkError(f"project {project_id} is no-go: " + "; ".join(f.text for f in report.reasons),
                             where=first.section, fix=first.fix)
    return report


__all__ = ["CheckReport", "Finding", "LoadedProject", "check_or_raise", "check_project", "population_by_group"]
