"""``placelink build``, ``placelink publish`` and ``placelink dbt-docs``: the dbt stage from the command line.

Registered on the main app by :func:`register` (a separate module keeps orchestration/cli.py small and lets each
stage own its commands). Each command is a thin call into :mod:`orchestration.lib.dbt_runner`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

HomeOption = Annotated[
    Path | None, typer.Option("--home", help="Home folder (default: $PLACELINK_HOME or ./.placelink).")
]


def register(app: typer.Typer) -> None:
    @app.command()
    def build(
        select: Annotated[list[str] | None, typer.Option("--select", "-s", help="dbt selector(s), e.g. marts.place+ or lsoa_monthly_indicators.")] = None,
        month: Annotated[str | None, typer.Option("--month", help="Rebuild one month only (YYYY-MM) in the incremental models.")] = None,
        threshold: Annotated[int | None, typer.Option("--threshold", help="Disclosure threshold: counts 1..threshold-1 are suppressed (default 5).")] = None,
        full_refresh: Annotated[bool, typer.Option("--full-refresh", help="Rebuild incremental models from scratch.")] = False,
        home: HomeOption = None,
    ) -> None:
        """Build the dbt models (staging, intermediate, marts, published) and run their tests in the warehouse.

        A run of the code location's dbt assets on this home's Dagster instance (shown by ``placelink ui``,
        audited once), like a refresh's."""
        from dagster_dbt import build_dbt_asset_selection

        from orchestration.defs.dbt.assets import placelink_dbt_models
        from orchestration.lib import dbt_runner
        from orchestration.lib.config import get_settings
        from orchestration.lib.errors import PlacelinkError
        from orchestration.runner import _load_defs, run_stage

        settings = get_settings(home=home).ensure()
        if not settings.warehouse_db.exists():
            raise PlacelinkError(f"no warehouse at {settings.warehouse_db}", where="dbt",
                                 fix="run `placelink pseudonymise` (or `placelink demo`) first")
        defs = _load_defs(settings)
        keys = sorted(build_dbt_asset_selection([placelink_dbt_models], dbt_select=" ".join(select or ["fqn:*"]))
                      .resolve(defs.resolve_asset_graph()))
        if not keys:
            raise PlacelinkError(f"no dbt model or seed matches --select {' '.join(select or [])}", where="--select",
                                 fix="name a model (lsoa_profile), a path (marts.place) or a graph (lsoa_profile+)")
        config = {"month": dbt_runner.normalise_month(month), "disclosure_threshold": threshold,
                  "full_refresh": full_refresh}
        outcome = run_stage("build", keys, settings, defs=defs,
                            run_config={"ops": {placelink_dbt_models.op.name: {"config": config}}})
        typer.echo(f"dbt build: {len(keys)} model(s) and seed(s) built in {outcome.seconds:.0f}s, run "
                   f"{outcome.run_id} (placelink ui shows it) in {settings.warehouse_db}")

    @app.command()
    def publish(home: HomeOption = None) -> None:
        """Write the disclosure-controlled tables (published.*) to <home>/published as Parquet and CSV.

        A run of the published/files asset on this home's Dagster instance (placelink ui shows it), which also
        redraws the atlas from those files."""
        from orchestration.stage_cli import run_publish

        run_publish(home, echo=typer.echo)

    @app.command("dbt-docs")
    def dbt_docs(home: HomeOption = None) -> None:
        """Generate the dbt docs (every model and column, the lineage graph) and say how to open them."""
        from orchestration.lib import dbt_runner
        from orchestration.lib.config import get_settings

        target = dbt_runner.docs_generate(get_settings(home=home).ensure())
        typer.echo(f"dbt docs generated in {target} (static_index.html: one self-contained page)")
        typer.echo("serve them with the atlas and the quality docs:  placelink docs")
