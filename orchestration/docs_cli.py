"""``placelink atlas`` and ``placelink docs``: the pictures (docs/atlas.md).

Registered on the main app by :func:`register`, like orchestration/dbt_cli.py. Thin: the logic is in
:mod:`orchestration.lib.atlas`, :mod:`orchestration.lib.boundaries` and :mod:`orchestration.lib.docs_site`.
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
    def atlas(
        out: Annotated[Path | None, typer.Option("--out", help="Folder to write (default <home>/atlas).")] = None,
        readme_images: Annotated[Path | None, typer.Option(
            "--readme-images", help="Also write one map and one chart as standalone SVG files here.")] = None,
        home: HomeOption = None,
    ) -> None:
        """Build the atlas (maps, trends, 'what rose here', scorecard charts) from the published tables only."""
        from orchestration.lib.atlas import build_atlas
        from orchestration.lib.config import get_settings
        from orchestration.lib.docs_site import served_url

        settings = get_settings(home=home).ensure()
        result = build_atlas(settings, out=out, readme_images=readme_images)
        typer.echo(f"atlas: {result.indicators} indicators, {result.pages} pages in {result.folder}"
                   + ("" if result.maps else " (no boundaries in reference/: maps left out, see docs/atlas.md)"))
        url = served_url(settings, result.index)
        if url:
            typer.echo(f"serve it with `placelink docs`, then open {url}")

    @app.command()
    def docs(
        port: Annotated[int, typer.Option(help="Port to listen on (0: any free port).")] = 8090,
        host: Annotated[str, typer.Option(help="Address to bind (0.0.0.0 in a container).")] = "127.0.0.1",
        rebuild: Annotated[bool, typer.Option("--rebuild", help="Build the dbt docs and the atlas again first.")] = False,
        serve_only: Annotated[bool, typer.Option("--serve-only", help="Build nothing; serve what is there.")] = False,
        home: HomeOption = None,
    ) -> None:
        """Serve the atlas, data quality docs, dbt docs and linkage charts on one port; print the one URL."""
        from orchestration.lib.config import get_settings
        from orchestration.lib.docs_site import make_server, prepare

        settings = get_settings(home=home)  # --serve-only may run on a read-only volume: create nothing
        if not serve_only:
            settings.ensure()
            prepare(settings, rebuild=rebuild, progress=lambda m: typer.echo(m, err=True))
        server = make_server(settings, host=host, port=port)
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
        typer.echo(f"http://{shown}:{server.server_address[1]}/")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
