"""The agreements register a DPO asks for: every feed, why we hold it, on what basis, for how long, and
which marts and models use it.

Agreements come from the feed contracts (``orchestration/feeds/*.yml``); lineage from dbt's manifest
(``dbt_project/target/manifest.json``: every model downstream of the feed's ``src`` source, via
``child_map``) and from the ML ethics records (``ml/models/*/ethics.yml``, their ``feeds`` list).

Why a small YAML reader here rather than ``orchestration.lib.contracts.load_contracts``: that loader
validates a contract for *ingest* and refuses the whole file on any mistake; the register (and retention)
must still list a feed whose contract is broken or whose agreement has expired — that is when a DPO needs
to see it. Only the ``partner``/``feeds[].agreement`` keys are read here.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections import deque
from pathlib import Path
from typing import Any

import yaml

from orchestration.lib.errors import PlacelinkError

ROOT = Path(__file__).resolve().parents[3]
FEEDS_DIR = ROOT / "orchestration" / "feeds"
MANIFEST = ROOT / "dbt_project" / "target" / "manifest.json"
ML_MODELS_DIR = ROOT / "ml" / "models"


def read_feed_agreements(feeds_dir: Path | None = None) -> list[dict[str, Any]]:
    """One dict per feed of every contract: partner, feed, table, event date column, agreement fields."""
    rows = []
    for path in sorted((feeds_dir or FEEDS_DIR).glob("*.y*ml")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise PlacelinkError(f"not valid YAML: {exc}", where=str(path), fix="fix the YAML syntax") from exc
        partner = data.get("partner") or {}
        for i, feed in enumerate(data.get("feeds") or []):
            agreement = feed.get("agreement") or {}
            basis = agreement.get("lawful_basis") or {}
            event_date = feed.get("event_date") or {}
            columns = {c.get("name"): c for c in feed.get("columns") or [] if isinstance(c, dict)}
            ev_col = event_date.get("column") if isinstance(event_date, dict) else event_date
            rows.append({
                "partner": partner.get("id"), "partner_name": partner.get("name"), "owner": partner.get("owner"),
                "feed": feed.get("id"), "description": feed.get("description"),
                "table": f"{partner.get('id')}__{feed.get('id')}",
                "record_id": feed.get("record_id"), "has_people": bool(feed.get("person")),
                "event_date_column": ev_col,
                "event_date_type": (columns.get(ev_col) or {}).get("type"),
                "event_date_format": (columns.get(ev_col) or {}).get("format"),
                "agreement_id": agreement.get("id"), "purposes": list(agreement.get("purposes") or []),
                "article_6": basis.get("article_6"), "special_category": bool(basis.get("special_category")),
                "law_enforcement": bool(basis.get("law_enforcement")),
                "dpa_2018_condition": basis.get("dpa_2018_condition") or basis.get("article_9"),
                "retention_months": agreement.get("retention_months"),
                "valid_from": agreement.get("valid_from"), "valid_to": agreement.get("valid_to"),
                "national_data_opt_out": bool(agreement.get("national_data_opt_out")),
                "contract": str(path), "where": f"{path.name}: feeds[{i}]",
            })
    return rows


def agreements_by_id(feeds_dir: Path | None = None) -> dict[str, dict[str, Any]]:
    """Agreement id -> {purposes, feeds}; one agreement may cover several feeds."""
    out: dict[str, dict[str, Any]] = {}
    for row in read_feed_agreements(feeds_dir):
        if row["agreement_id"]:
            entry = out.setdefault(row["agreement_id"], {"purposes": set(), "feeds": []})
            entry["purposes"].update(row["purposes"])
            entry["feeds"].append(f"{row['partner']}.{row['feed']}")
    return out


def dbt_lineage(manifest_path: Path | None = None) -> dict[str, list[str]]:
    """``<partner>__<feed>`` -> the marts/published models downstream of its ``src`` source."""
    path = manifest_path or MANIFEST
    if not path.exists():
        return {}
    manifest = json.loads(path.read_text())
    nodes = {**manifest.get("nodes", {}), **manifest.get("exposures", {})}
    child_map: dict[str, list[str]] = manifest.get("child_map", {})
    out: dict[str, list[str]] = {}
    for uid, source in manifest.get("sources", {}).items():
        name = source.get("identifier") or source.get("name")
        seen, queue, used = {uid}, deque([uid]), set()
        while queue:
            for child in child_map.get(queue.popleft(), []):
                if child in seen:
                    continue
                seen.add(child)
                queue.append(child)
                node = nodes.get(child) or {}
                schema = str(node.get("schema") or (node.get("config") or {}).get("schema") or "")
                if node.get("resource_type") == "exposure":
                    used.add(f"exposure:{node.get('name')}")
                elif node.get("resource_type") == "model" and (
                        schema.endswith(("marts", "published")) or {"marts", "published"} & set(node.get("fqn", []))):
                    leaf = "published" if (schema.endswith("published") or "published" in node.get("fqn", [])) \
                        else "marts"
                    used.add(f"{leaf}.{node.get('alias') or node.get('name')}")
        out.setdefault(name, [])
        out[name] = sorted(set(out[name]) | used)
    return out


def ml_lineage(models_dir: Path | None = None) -> dict[str, list[tuple[str, str | None]]]:
    """``<partner>__<feed>`` -> (model, the agreement purpose its ethics record claims) for each ML model
    whose ethics record lists the feed."""
    out: dict[str, list[tuple[str, str | None]]] = {}
    for path in sorted((models_dir or ML_MODELS_DIR).glob("*/ethics.yml")):
        data = yaml.safe_load(path.read_text()) or {}
        feeds = data.get("feeds") or (data.get("data") or {}).get("feeds") or []
        model = data.get("model") or path.parent.name
        purpose = data.get("purpose")
        purpose = purpose.get("agreement_purpose") if isinstance(purpose, dict) else purpose
        for feed in feeds:
            key = str(feed).replace(".", "__") if "__" not in str(feed) else str(feed)
            out.setdefault(key, []).append((model, purpose))
    return out


def agreements_register(feeds_dir: Path | None = None, manifest_path: Path | None = None,
                        models_dir: Path | None = None, today: dt.date | None = None) -> list[dict[str, Any]]:
    """Every feed with its agreement and what uses it; ``status`` flags expired or incomplete agreements."""
    today = today or dt.date.today()
    marts, models = dbt_lineage(manifest_path), ml_lineage(models_dir)
    rows = []
    for f in read_feed_agreements(feeds_dir):
        problems = []
        if not f["agreement_id"]:
            problems.append("no agreement")
        if not f["article_6"]:
            problems.append("no Art.6 basis")
        if (f["special_category"] or f["law_enforcement"]) and not f["dpa_2018_condition"]:
            problems.append("no DPA 2018 condition")
        if not f["retention_months"]:
            problems.append("no retention")
        for model, purpose in models.get(f["table"], []):
            if purpose and purpose not in f["purposes"]:
                problems.append(f"model {model} uses it for {purpose}, which the agreement does not permit")
        valid_to = f["valid_to"]
        if isinstance(valid_to, dt.date) and valid_to < today:
            problems.append(f"expired {valid_to}")
        rows.append({
            "partner": f["partner"], "feed": f["feed"], "agreement_id": f["agreement_id"],
            "purposes": ", ".join(f["purposes"]), "lawful_basis": f["article_6"],
            "dpa_2018_condition": f["dpa_2018_condition"] or "",
            "retention_months": f["retention_months"], "valid_to": str(valid_to or ""),
            "opt_out_applied": "yes" if f["national_data_opt_out"] else "no",
            "used_by_marts": ", ".join(marts.get(f["table"], [])),
            "used_by_models": ", ".join(m for m, _ in models.get(f["table"], [])),
            "status": "; ".join(problems) or "ok",
        })
    return rows


def render(rows: list[dict[str, Any]], fmt: str) -> str:
    """``md`` (a Markdown table) or ``csv``."""
    if not rows:
        return ""
    cols = list(rows[0])
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buf.getvalue()
    if fmt == "md":
        def cell(v: Any) -> str:
            return str(v if v is not None else "").replace("|", "\\|")
        lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(cell(r[c]) for c in cols) + " |" for r in rows]
        return "\n".join(lines) + "\n"
    raise PlacelinkError(f"unknown format {fmt!r}", fix="use --format table, md or csv")
