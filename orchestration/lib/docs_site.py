"""``placelink docs``: the atlas, the data quality docs (GX Data Docs), the dbt docs and the linkage diagnostics
served over HTTP from one port, with an index page.

One address for every picture, so links from Dagster (asset and check metadata) open in a browser: browsers will
not follow a ``file://`` link from an ``http://`` page. :func:`served_url` turns a file under one of the served
folders into its ``http://`` URL under :func:`docs_base_url`; Dagster metadata uses it, so the links point at the
server whether or not it is running yet (start it with ``placelink docs``; in Docker, the ``docs`` service).

The server is the standard library's (``http.server``): read-only, GET/HEAD only, each URL prefix mapped to one
folder, nothing outside those folders reachable. It binds to 127.0.0.1 unless told otherwise. Nothing it serves
holds personal data: the atlas is built from the published tables, the GX pages are masked (expectations/
runner.py), the dbt docs describe models, and only chart files of the MLflow store are listed. The identifiable
zone's folder is never mapped.
"""

from __future__ import annotations

import html
import os
import posixpath
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from orchestration.lib.config import Settings

#: where ``placelink docs`` listens unless told otherwise; ``PLACELINK_DOCS_URL`` overrides the links' base
DEFAULT_PORT = 8090
DEFAULT_BASE = f"http://127.0.0.1:{DEFAULT_PORT}"
#: file types listed and served from the MLflow store (charts only: no model files, no parameters)
CHART_SUFFIXES = (".html", ".png", ".svg")


def docs_base_url() -> str:
    """Base URL of the docs server as users reach it (``PLACELINK_DOCS_URL``, e.g. behind a proxy)."""
    return os.environ.get("PLACELINK_DOCS_URL", DEFAULT_BASE).rstrip("/")


@dataclass(frozen=True)
class Section:
    prefix: str
    title: str
    folder: Path
    index: str
    blurb: str
    #: when set, only files of these names / suffixes are served from the folder
    names: tuple[str, ...] = ()
    suffixes: tuple[str, ...] = ()

    def serves(self, path: Path) -> bool:
        return ((not self.names or path.name in self.names)
                and (not self.suffixes or path.suffix.lower() in self.suffixes))


def sections(settings: Settings) -> list[Section]:
    """The served folders, one URL prefix each: the single list both the server and :func:`served_url` use."""
    from orchestration.lib.dbt_runner import target_dir

    return [
        Section("atlas", "Atlas", settings.home / "atlas", "index.html",
                "Maps and trends of every published indicator; the partner scorecard charts."),
        Section("quality", "Data quality (Great Expectations Data Docs)", settings.quality_dir / "docs",
                "index.html", "Every validation of every feed and table: what was checked, what failed."),
        # the docs pages only: not the run logs, compiled SQL and run results that share dbt's target folder
        Section("dbt", "dbt docs", target_dir(settings), "static_index.html",
                "Every model and column of the warehouse, and the lineage graph.",
                names=("static_index.html", "index.html", "manifest.json", "catalog.json")),
        Section("linkage", "Linkage and model diagnostics (MLflow charts)", settings.mlflow_artifacts, "",
                "Charts the linkage and model training runs logged to MLflow (match weights, calibration ...).",
                suffixes=CHART_SUFFIXES),
    ]


def served_url(settings: Settings, target: str | Path | None) -> str | None:
    """The ``http://`` URL of a file (path or ``file://`` URL) under a served folder; None when not served."""
    if not target:
        return None
    text = str(target)
    path = Path(unquote(urlsplit(text).path)) if text.startswith("file://") else Path(text)
    path = path.resolve()
    for s in sections(settings):
        root = s.folder.resolve()
        if path.is_relative_to(root):
            rel = path.relative_to(root).as_posix()
            return f"{docs_base_url()}/{s.prefix}/{quote(rel) if rel != '.' else ''}"
    return None


def _charts(folder: Path) -> list[Path]:
    if not folder.exists():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in CHART_SUFFIXES)


def index_page(settings: Settings) -> str:
    items = []
    for s in sections(settings):
        if s.prefix == "linkage":
            charts = _charts(s.folder)
            links = "".join(f"<li><a href='/linkage/{quote(p.relative_to(s.folder).as_posix())}'>"
                            f"{html.escape(p.relative_to(s.folder).as_posix())}</a></li>" for p in charts[:200])
            body = f"<ul>{links}</ul>" if charts else "<p class='none'>no charts logged yet</p>"
            items.append(f"<section><h2>{html.escape(s.title)}</h2><p>{html.escape(s.blurb)}</p>{body}</section>")
            continue
        ready = (s.folder / s.index).exists()
        link = (f"<a class='section-link' href='/{s.prefix}/'>{html.escape(s.title)}</a>" if ready
                else f"{html.escape(s.title)} <span class='none'>(not built yet: run `placelink docs --rebuild`)</span>")
        items.append(f"<section><h2>{link}</h2><p>{html.escape(s.blurb)}</p></section>")
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'><title>placelink docs</title><style>"
            "body{font-family:system-ui,sans-serif;margin:2rem;max-width:60rem;color:#222}"
            "section{border:1px solid #ddd;padding:.4rem 1rem;margin:1rem 0;background:#fff}.none{color:#777}"
            "</style></head><body><h1>placelink docs</h1>"
            f"<p>Home <code>{html.escape(str(settings.home))}</code>. Everything here is safe to share inside "
            "the partnership: no personal data.</p>" + "".join(items) + "</body></html>")


class _Handler(SimpleHTTPRequestHandler):
    """Prefix -> folder; anything else 404. GET/HEAD only (the base class has no write methods)."""

    settings: Settings

    def __init__(self, *args, settings: Settings, **kwargs):
        self.settings = settings
        super().__init__(*args, directory=str(settings.home / "atlas"), **kwargs)

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass  # quiet: the server is a side door, not an audit point (nothing personal is served)

    def _target(self) -> tuple[Section | None, Path | None]:
        path = posixpath.normpath(unquote(urlsplit(self.path).path))
        if "\x00" in path:
            return None, None
        parts = [p for p in path.split("/") if p]
        if not parts:
            return None, None
        for s in sections(self.settings):
            if parts[0] == s.prefix:
                root = s.folder.resolve()
                target = root.joinpath(*parts[1:]).resolve() if len(parts) > 1 else root
                if not target.is_relative_to(root):
                    return s, None
                if target.is_dir() and s.index:
                    target = target / s.index
                if not s.serves(target):
                    return s, None
                return s, target
        return None, None

    def send_head(self):
        parsed = urlsplit(self.path).path
        if parsed in ("/", "/index.html"):
            body = index_page(self.settings).encode("utf-8")
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            from io import BytesIO

            return BytesIO(body)
        section, target = self._target()
        if section is not None and len([p for p in parsed.split("/") if p]) == 1 and not parsed.endswith("/"):
            self.send_response(301)  # /atlas -> /atlas/ so the pages' relative links resolve
            self.send_header("Location", parsed + "/")
            self.end_headers()
            return None
        if target is None or not target.is_file():
            self.send_error(404, "not found")
            return None
        ctype = self.guess_type(str(target))
        f = open(target, "rb")  # noqa: SIM115 - the base class closes it after copying
        size = os.fstat(f.fileno()).st_size
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(size))
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        return f


def make_server(settings: Settings, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> ThreadingHTTPServer:
    """The docs server, bound but not yet serving (``serve_forever()``; port 0 picks a free port)."""
    return ThreadingHTTPServer((host, port), partial(_Handler, settings=settings))


def prepare(settings: Settings, rebuild: bool = False, progress=None) -> list[str]:
    """Build what the server shows and is missing (or everything with ``rebuild``): the static dbt docs and the
    atlas. The GX Data Docs are written by every validation already. Returns what was built."""
    from orchestration.lib import dbt_runner
    from orchestration.lib.atlas import build_atlas

    say = progress or (lambda message: None)
    built = []
    by = {s.prefix: s for s in sections(settings)}
    if settings.warehouse_db.exists() and (rebuild or not (by["dbt"].folder / by["dbt"].index).exists()):
        say("generating the dbt docs (dbt docs generate --static)")
        dbt_runner.docs_generate(settings)
        built.append("dbt")
    published = settings.published / "place_monthly_indicators.parquet"
    if published.exists() and (rebuild or not (by["atlas"].folder / by["atlas"].index).exists()):
        say("building the atlas from the published tables")
        build_atlas(settings)
        built.append("atlas")
    return built
