"""What ``placelink ingest``, ``match``, ``pseudonymise``, ``publish``, ``train``, ``score`` and ``quality
--scorecard`` do: each is a run of the code location's assets on this home's Dagster instance
(:mod:`orchestration.runner`), the same assets and jobs the landing sensor, the nightly schedule and the UI start,
so run history, asset status, sensor cursors and the audit agree whoever started the work. The figures printed are
the runs' own materialisation metadata (what the Dagster UI shows for them)."""

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


def _ml_config(feeds_dir: Path | None) -> dict:
    from orchestration.defs.ml.assets import ML_ASSETS

    if not feeds_dir:
        return {}
    return {"ops": {a.op.name: {"config": {"feeds_dir": str(feeds_dir)}} for a in ML_ASSETS}}


def _ready_models(named: list[str] | None, check, refused: type[Exception], none_left: PlacelinkError) -> list[str]:
    """The models a train/score command runs: ``check(model)`` raises ``refused`` for one that cannot run. A model
    named on the command line that cannot run is the command's error; of all models, those are skipped and named,
    and ``none_left`` is raised when none can run."""
    from ml.features import list_models

    chosen = []
    for model in named or list_models():
        try:
            check(model)
        except refused as exc:
            if named:
                raise
            console.print(f"[yellow]skipped {model}:[/] {exc}", highlight=False, soft_wrap=True)
            continue
        chosen.append(model)
    if not chosen:
        raise none_left
    return chosen


def run_publish(home: Path | None, *, echo) -> None:
    """``placelink publish``: a run of ``published/files`` (the files and the atlas drawn from them)."""
    from orchestration.runner import run_stage

    settings = get_settings(home=home).ensure()
    if not settings.warehouse_db.exists():  # before starting a run that could only fail
        raise PlacelinkError(f"no warehouse at {settings.warehouse_db}", where="publish",
                             fix="run `placelink build` (or `placelink demo`) first")
    key = dg.AssetKey(["published", "files"])
    with console.status("publishing"):
        outcome = run_stage("publish", [key], settings)
    meta = outcome.materialised.get((key.to_user_string(), None), {})
    for path in meta.get("files", []):
        echo(f"wrote {path}")
    if meta.get("atlas_error"):
        echo(f"atlas not built: {meta['atlas_error']}")
    echo(f"run {outcome.run_id} (placelink ui shows it)")


def run_train(home: Path | None, *, models: list[str] | None, feeds_dir: Path | None, echo) -> None:
    """``placelink train``: a run of the ``ml/<model>_training`` assets (train, register, gate, promote). A model
    named on the command line whose marts hold too little history is an error (exit 2, saying how many months it
    needs); of all models, those are skipped and named, and none left to train is an error."""
    from ml.features import NotEnoughHistoryError, connect_read_only, list_models, load_spec, require_history
    from orchestration.runner import run_stage

    settings = get_settings(home=home).ensure()
    unknown = sorted(set(models or []) - set(list_models()))
    if unknown:
        raise PlacelinkError(f"no model named {', '.join(unknown)}", where="--model",
                             fix=f"choose from {', '.join(list_models())} (ml/models/)")
    # the training asset's own first check, made before the run so the command can fail on it: in a nightly
    # refresh the asset skips such a model with a warning instead
    with connect_read_only(settings.warehouse_db) as con:
        models = _ready_models(
            models, lambda m: require_history(con, load_spec(m), settings.warehouse_db), NotEnoughHistoryError,
            PlacelinkError("no model has enough history in the marts to train", where=str(settings.warehouse_db),
                           fix="load more months of drops; each skipped model above says how many it needs"))
    keys = [dg.AssetKey(["ml", f"{m}_training"]) for m in models]
    with console.status(f"training {', '.join(models)}"):
        # feeds_dir is the ML checks' contracts folder (agreements permit the purpose), given to the assets only
        outcome = run_stage("train", keys, settings, run_config=_ml_config(feeds_dir))
    for model, key in zip(models, keys, strict=True):
        meta = outcome.materialised.get((key.to_user_string(), None))
        if meta is None:  # too little history: the asset says so in its log and is not materialised
            echo(f"{model}: not trained (too little history in the marts; the run's log says how much): "
                 f"run {outcome.run_id}")
            continue
        metric, base = (("metric/auc", "metric/baseline_auc") if "metric/auc" in meta
                        else ("metric/mae", "metric/baseline_seasonal_naive_mae"))
        echo(f"{model} v{meta['model_version']}: {metric.split('/')[1]} {meta[metric]:.3f} "
             f"(baseline {meta[base]:.3f}); {meta['decision']}")
    echo(f"run {outcome.run_id} (placelink ui shows it; MLflow has the runs and model cards)")


def run_score(home: Path | None, *, models: list[str] | None, feeds_dir: Path | None, echo) -> None:
    """``placelink score``: a run of the prediction assets, each writing from its model's champion. A model named
    on the command line without a champion is an error; of all models, those without one are skipped and named."""
    from ml.score import NoChampionError, require_champion
    from orchestration.defs.ml.assets import MODELS
    from orchestration.runner import run_stage

    settings = get_settings(home=home).ensure()
    # a refused model does not stop the others' predictions; its card says why it was refused
    chosen = _ready_models(
        models, lambda m: require_champion(m, settings), NoChampionError,
        PlacelinkError("no model has a champion to score with", where=settings.mlflow_tracking_uri,
                       fix="run `placelink train`; each refused model's card says why it was refused"))
    keys = [dg.AssetKey(["ml", MODELS[m][1]]) for m in chosen]
    with console.status(f"scoring {', '.join(chosen)}"):
        outcome = run_stage("score", keys, settings, run_config=_ml_config(feeds_dir))
    for model, key in zip(chosen, keys, strict=True):
        meta = outcome.materialised.get((key.to_user_string(), None))
        if meta is None:  # the asset wrote nothing and said why in the run's log
            echo(f"{model}: no predictions written (the run's log says why): run {outcome.run_id}")
            continue
        echo(f"{model} v{meta['model_version']}: {meta['dagster/row_count']} rows from {meta['as_of']} "
             f"-> {meta['table']}")
    echo(f"run {outcome.run_id} (placelink ui shows it)")


def run_scorecard(home: Path | None, *, partner: str | None, echo) -> None:
    """``placelink quality --scorecard``: a run of ``quality/feed_scorecard`` (the asset the nightly refresh
    rebuilds), then its latest month per feed from the warehouse."""
    import duckdb

    from orchestration.defs.quality.checks import SCORECARD_KEY
    from orchestration.lib.quality import SCORECARD_TABLE, print_scorecard
    from orchestration.runner import run_stage

    settings = get_settings(home=home).ensure()
    with console.status("feed scorecard"):
        outcome = run_stage("scorecard", [SCORECARD_KEY], settings)
    with duckdb.connect(str(settings.warehouse_db), read_only=True) as con:
        card = con.execute(f"SELECT * FROM {SCORECARD_TABLE}").df()
    print_scorecard(card, partner=partner, console=console)
    echo(f"run {outcome.run_id} (placelink ui shows it)")
