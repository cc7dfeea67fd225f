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
        """Build the dbt models (staging, intermediate, marts, published) and run their tests in the warehouse."""
        from orchestration.lib import dbt_runner
        from orchestration.lib.config import get_settings

        settings = get_settings(home=home).ensure()
        result = dbt_runner.build(select=select, month=month, threshold=threshold, full_refresh=full_refresh,
                                  settings=settings)
        ok = sum(r["status"] in ("success", "pass") for r in result.results)
        typer.echo(f"dbt build: {ok} of {len(result.results)} nodes ok in {settings.warehouse_db}")

    @app.command()
    def publish(home: HomeOption = None) -> None:
        """Write the disclosure-controlled tables (published.*) to <home>/published as Parquet and CSV."""
        from orchestration.lib import dbt_runner
        from orchestration.lib.config import get_settings

        for path in dbt_runner.publish(get_settings(home=home).ensure()):
            typer.echo(f"wrote {path}")

    @app.command("dbt-docs")
    def dbt_docs(home: HomeOption = None) -> None:
        """Generate the dbt docs (every model and column, the lineage graph) and say how to open them."""
        from orchestration.lib import dbt_runner
        from orchestration.lib.config import get_settings

        target = dbt_runner.docs_generate(get_settings(home=home).ensure())
        typer.echo(f"dbt docs generated in {target} (static_index.html: one self-contained page)")
        typer.echo("serve them with the atlas and the quality docs:  placelink docs")
