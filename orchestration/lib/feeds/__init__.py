"""Ingest partner drops into the identifiable zone, per feed contract and sharing agreement.

Public surface: :func:`ingest` (every feed/partition, what the CLI runs), :func:`ingest_partition`
(one feed, one month; what each Dagster partition runs) and the helpers the sensor uses.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from orchestration.lib.config import Settings
from orchestration.lib.contracts import Feed, load_contracts
from orchestration.lib.errors import PlacelinkError, withhold_library_errors
from orchestration.lib.feeds.encoded import ingest_encoded_partition
from orchestration.lib.feeds.load import (
    ParsedDrops,
    PartitionResult,
    check_agreement,
    drop_feed,
    drop_partition,
    feed_drops,
    ingest_clear_partition,
    parse_partitions,
    record_rejected,
    sha256_of,
)
from orchestration.lib.governance.erasure import read_opt_outs
from orchestration.lib.landing import LandingFile, contract_extensions, scan_landing

__all__ = ["IngestReport", "PartitionResult", "drop_partition", "feed_drops", "ingest", "ingest_partition",
           "parse_partitions",
           "read_opt_outs", "sha256_of", "month_partition"]


def ingest_partition(con: duckdb.DuckDBPyConnection, feed: Feed, partition: str, landing: Path, *,
                     home: Path | None = None, opt_outs=None, today: dt.date | None = None,
                     parsed: ParsedDrops | None = None) -> PartitionResult:
    """Replace one monthly partition of a feed with what its landing drops hold. Idempotent.

    Args:
        con: a writable connection to the identifiable zone.
        feed: the validated feed contract.
        partition: ``YYYY-MM-01`` (or ``YYYY-MM``).
        landing: the landing root (``<home>/landing``).
        home: paths are recorded relative to it (``landing/<partner>/<feed>/<file>``).
        opt_outs: normalised NHS numbers under the national data opt-out.
        parsed: files already parsed by :func:`parse_partitions` (the rest are parsed here).

    Raises:
        DataError: agreement expired / no lawful basis; a drop's columns differ from the contract; a library
            rejected a value (:class:`~orchestration.lib.errors.LibraryDataError`).
        PlacelinkError: any other failure, a library's own message withheld (it can quote the data).
    """
    if feed.linkage.mode == "encoded":
        # the partner sent placelink-partner's drops (encodings + manifest), not the native export. Chosen here,
        # above both readers: the encoded one reuses the clear one's helpers, so the clear one must not import it
        with withhold_library_errors(f"ingest of {feed.source} {partition[:7]}", where=feed.table):
            check_agreement(feed, today)
            return ingest_encoded_partition(con, feed, partition, landing, home=home, opt_outs=opt_outs)
    return ingest_clear_partition(con, feed, partition, landing, home=home, opt_outs=opt_outs, today=today,
                                  parsed=parsed)


def month_partition(month: str) -> str:
    """``2025-03`` / ``2025-03-01`` -> ``2025-03-01``; a clear error otherwise."""
    try:
        return dt.date.fromisoformat(month.strip()[:7] + "-01").isoformat()
    except ValueError:
        raise PlacelinkError(f"month {month!r} is not YYYY-MM", where="--month", fix="e.g. --month 2025-03") from None


@dataclass
class IngestReport:
    results: list[PartitionResult] = field(default_factory=list)
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # (feed, partition, message)
    #: landing entries the landing rule rejects (misnamed, links, special files, outside any feed folder)
    rejected: list[LandingFile] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def ingest(settings: Settings, *, partner: str | None = None, feed: str | None = None,
           month: str | None = None, feeds_dir: str | Path | None = None, rebuild: bool = False,
           today: dt.date | None = None,
           progress: Callable[[Feed, str, PartitionResult | None, str | None], None] | None = None
           ) -> IngestReport:
    """Load every landing drop (optionally one partner / feed / month) into ``identifiable.duckdb``.

    The same code each Dagster partition runs; a failing feed (schema change, expired agreement) is
    reported and the others still load. Every landing entry the landing rule rejects (in the chosen feeds'
    folders, or outside any feed's) is recorded in ``ops.load_log``/``ops.quarantine`` and returned in
    ``IngestReport.rejected``, on every run until it is fixed.
    """
    contracts = load_contracts(feeds_dir)
    feeds = contracts.feeds(partner, feed)
    wanted = month_partition(month) if month else None
    opt_outs = read_opt_outs(settings.reference)
    report = IngestReport()
    settings.home.mkdir(parents=True, exist_ok=True)
    extensions = contract_extensions(contracts.feeds())
    scan = scan_landing(settings.landing, extensions)
    chosen = {(f.partner, f.id) for f in feeds}
    report.rejected = [x for x in scan if x.reason and ((x.partner, x.feed) in chosen
                                                         or (x.partner, x.feed) not in extensions)]
    with duckdb.connect(str(settings.identifiable_db)) as con:
        for f in feeds:
            if rebuild:
                drop_feed(con, f)
            partitions = sorted(feed_drops(settings.landing, f))
            if wanted:
                partitions = [wanted]
            try:
                parsed = parse_partitions(f, partitions, settings.landing, home=settings.home, opt_outs=opt_outs)
            except Exception:  # noqa: BLE001 - e.g. an expired agreement: each partition below reports it
                parsed = ParsedDrops()
            with parsed:
                for part in partitions:
                    try:
                        res = ingest_partition(con, f, part, settings.landing, home=settings.home,
                                               opt_outs=opt_outs, today=today, parsed=parsed)
                    except PlacelinkError as exc:
                        report.failures.append((f.source, part, str(exc)))
                        if progress:
                            progress(f, part, None, str(exc))
                        continue
                    report.results.append(res)
                    if progress:
                        progress(f, part, res, None)
        # after the loads: --rebuild forgets everything a feed recorded, rejections included
        record_rejected(con, report.rejected, feeds=sorted(chosen), known=set(extensions),
                        landing=settings.landing, home=settings.home)
    # the identifiable file and the drops it read are owner-only, whatever umask this process started with
    from orchestration.lib.filemodes import harden_identifiable

    harden_identifiable(settings.home)
    _audit(settings, feeds, report)
    return report


def _audit(settings: Settings, feeds: list[Feed], report: IngestReport) -> None:
    """One audit event per loaded partition, under the feed's agreement (Dagster runs are audited by the
    governance sensor instead, so this sits here and not in :func:`ingest_partition`)."""
    from orchestration.lib.governance.audit import record_events

    by_feed = {(f.partner, f.id): f for f in feeds}
    events = []
    for r in report.results:
        feed = by_feed[(r.partner, r.feed)]
        events.append({"action": "ingest", "target": feed.table, "agreement_id": feed.agreement.id,
                       "purpose": ", ".join(feed.agreement.purposes),
                       "details": {"partition": r.partition, "rows_received": r.rows_received,
                                   "rows_loaded": r.rows_loaded, "rows_quarantined": r.rows_quarantined,
                                   "quarantined_by_reason": r.quarantined_by_reason, "via": "ingest()"}})
    events += [{"action": "ingest_failed", "target": source, "details": {"partition": part, "error": msg}}
               for source, part, msg in report.failures]
    record_events(settings, events)
