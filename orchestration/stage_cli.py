"""What ``placelink ingest``, ``placelink match`` and ``placelink pseudonymise`` do: each is a run of the code
location's assets on this home's Dagster instance (:mod:`orchestration.runner`), the same assets and jobs the
landing sensor, the nightly schedule and the UI start, so run history, asset status, sensor cursors and the
audit agree whoever started the work. The figures printed are the runs' own materialisation metadata (what the
Dagster UI shows for them)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from rich.console import Console

from orchestration.lib.config import Settings, get_settings
from orchestration.lib.errors import PlacelinkError

console = Console(stderr=True)


def _op(key: dg.AssetKey) -> str:
    """The op (and step) name Dagster gives a single asset: ``raw/acme__visits`` -> ``raw__acme__visits``."""
    return key.to_python_identifier()


def run_ingest(home: Path | None, *, partner: str | None, feed: str | None, month: str | None, rebuild: bool,
               feeds_dir: Path | None, echo) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from orchestration.defs.feeds.assets import raw_key
    from orchestration.defs.partitions import monthly_partitions
    from orchestration.lib.contracts import load_contracts
    from orchestration.lib.feeds import feed_drops, month_partition
    from orchestration.lib.landing import contract_extensions, scan_landing
    from orchestration.runner import run_loads

    settings: Settings = get_settings(home=home).ensure()
    contracts = load_contracts(feeds_dir)
    feeds = contracts.feeds(partner, feed)
    wanted = month_partition(month) if month else None
    valid = set(monthly_partitions.get_partition_keys())
    partitions: dict[str, list[dg.AssetKey]] = {}
    outside: list[str] = []
    no_drop: list[str] = []
    for f in feeds:
        drops = sorted(feed_drops(settings.landing, f))
        # --month loads the feeds that have a drop for it: a feed without one has nothing to load (its quality
        # check would fail on an empty month, which is not the partner's fault)
        months = [pk for pk in drops if pk == wanted] if wanted else drops
        if wanted and not months:
            no_drop.append(f.source)
        for pk in months:
            if pk in valid:
                partitions.setdefault(pk, []).append(raw_key(f))
            else:
                outside.append(f"{f.source} {pk[:7]}")
    by_op = {_op(raw_key(f)): f for f in feeds}

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("ingest", total=None)
        outcomes = run_loads("ingest", partitions, settings, rebuild=rebuild, feeds_dir=feeds_dir,
                             progress=lambda msg, done, total: bar.update(task, description=msg, completed=done,
                                                                         total=total or None))
    totals = {"received": 0, "loaded": 0, "quarantined": 0}
    lines = []
    for o in outcomes:
        for (key, pk), meta in o.materialised.items():
            f = by_op.get(_op(dg.AssetKey.from_user_string(key)))
            if f is None or pk is None:
                continue
            # a run over a range of months carries each month's figures under "partitions"
            m = meta.get("partitions", {}).get(pk) if "partitions" in meta else {
                "received": meta["rows_received"], "loaded": meta["rows_loaded"],
                "quarantined": meta["rows_quarantined"], "quarantined_by_reason": meta["quarantined_by_reason"]}
            if m is None:
                continue
            for k in totals:
                totals[k] += m[k]
            reasons = ", ".join(f"{k} {v}" for k, v in sorted((m.get("quarantined_by_reason") or {}).items()))
            lines.append((f.source, pk, f"{f.source:44} {pk[:7]}  received {m['received']:>7,}  loaded "
                                        f"{m['loaded']:>7,}  quarantined {m['quarantined']:>5,}"
                                        + (f"  ({reasons})" if reasons else "")))
    for *_, line in sorted(lines):
        console.print(line, highlight=False, soft_wrap=True)
    echo(f"{len(lines)} partitions: received {totals['received']:,}, loaded {totals['loaded']:,}, "
         f"quarantined {totals['quarantined']:,} -> {settings.identifiable_db}")
    if outcomes:
        echo(f"{len(outcomes)} run(s) of all_feeds_ingest_job: {', '.join(o.run_id for o in outcomes)} "
             "(placelink ui shows them)")
    for item in outside:
        echo(f"  not loaded: {item} is outside the monthly partitions")
    if no_drop and (partner or feed or not partitions):
        echo(f"  no drop for {month} in landing/ for: {', '.join(no_drop)}")
    extensions = contract_extensions(contracts.feeds())
    chosen = {(f.partner, f.id) for f in feeds}
    rejected = [x for x in scan_landing(settings.landing, extensions) if x.reason and (
        (x.partner, x.feed) in chosen or (x.partner, x.feed) not in extensions)]
    if rejected:
        echo(f"{len(rejected)} file(s) in landing/ rejected, not loaded (recorded in ops.load_log as "
             "'rejected' and in ops.quarantine; reported on every run until fixed):")
        for item in rejected:
            echo(f"  landing/{item.rel}: {item.reason} (fix: {item.fix})")
    failed = [o for o in outcomes if not o.success]
    if failed:
        what = []
        for o in failed:
            months = "..".join(pk[:7] for pk in o.partitions)
            for step, why in o.errors.items():
                f = by_op.get(step)
                what.append(f"{f.source if f else step} {months} (run {o.run_id}: {why})")
        # the first line says what failed (feed, month, the step's own reason naming the file), then where to look
        raise PlacelinkError(f"{len(what)} feed load(s) failed; nothing was loaded for them: " + "; ".join(what),
                             fix="correct what the reason names (ask the partner for the agreed columns, or agree "
                                 "the contract change), then rerun; placelink ui shows the run (Dagster instance "
                                 f"{settings.dagster_home})")


def run_match(home: Path | None, *, full: bool, retrain: bool, echo) -> None:
    from orchestration.defs.matching.assets import ADDRESS_MATCHES, HOUSEHOLD_INDEX, PERSON_INDEX
    from orchestration.runner import run_stage

    settings = get_settings(home=home).ensure()
    with console.status("matching: addresses, persons, households"):
        outcome = run_stage("match", [ADDRESS_MATCHES, PERSON_INDEX, HOUSEHOLD_INDEX], settings,
                            run_config={"ops": {"matching": {"config": {"full": full, "retrain": retrain}}}})
    figures: dict = {}
    for key in (ADDRESS_MATCHES, PERSON_INDEX, HOUSEHOLD_INDEX):
        figures.update(outcome.materialised.get((key.to_user_string(), None), {}))
    for key, value in figures.items():
        if not key.startswith("dagster/"):
            echo(f"{key:36} {value}")
    echo(f"{'run':36} {outcome.run_id} (placelink ui shows it)")


def run_pseudonymise(home: Path | None, *, partner: str | None, feed: str | None, feeds_dir: Path | None,
                     rebuild: bool, echo) -> None:
    from orchestration.defs.feeds.assets import REFERENCE_TABLES, src_key
    from orchestration.lib.contracts import load_contracts
    from orchestration.lib.feeds.warehouse_sources import loaded_feeds
    from orchestration.runner import run_stage

    settings = get_settings(home=home).ensure()
    feeds = load_contracts(feeds_dir).feeds(partner, feed)
    loaded = {f.name for f in loaded_feeds(settings.identifiable_db, feeds)}
    # only the reference tables the home has a CSV for: a selected ref/* asset that writes nothing would make
    # Dagster skip the src/* steps that depend on it in the same run
    refs = [dg.AssetKey(["ref", name]) for name in REFERENCE_TABLES if (settings.reference / f"{name}.csv").exists()]
    keys = refs + [src_key(f) for f in feeds if f.name in loaded]
    ops = {_op(src_key(f)): {"config": {"rebuild": True}} for f in feeds if f.name in loaded} if rebuild else {}
    with console.status("pseudonymising"):
        outcome = run_stage("pseudonymise", keys, settings, feeds_dir=feeds_dir,
                            run_config={"ops": ops} if ops else None)
    for key in refs:
        meta = outcome.materialised.get((key.to_user_string(), None))
        if meta is not None:
            echo(f"{'ref.' + key.path[-1]:48} {meta['dagster/row_count']:>10,}")
    for f in feeds:
        meta = outcome.materialised.get((src_key(f).to_user_string(), None))
        rows = ("not loaded yet" if f.name not in loaded else "skipped: see the run" if meta is None
                else f"{meta['dagster/row_count']:>10,}")
        echo(f"{'src.' + f.name:48} {rows}")
    echo(f"-> {settings.warehouse_db} (run {outcome.run_id}: placelink ui shows it)")
