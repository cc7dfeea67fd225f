"""The landing rule: which files in ``landing/`` are partner drops, and an account of every file that is not.

One rule, here, used by ingest (:func:`orchestration.lib.feeds.feed_drops`), the landing sensor and the
nightly planner (:func:`orchestration.lib.ops.drops.list_drops`), so they can never disagree about a file.

A drop is a **regular file** named::

    landing/<partner>/<feed>/<YYYY-MM-DD>[_<suffix>].<ext>

* ``<YYYY-MM-DD>`` is the day the partner sent it, a real calendar date, from ``PARTITION_START`` (the first
  month placelink has partitions for) to tomorrow (a partner's clock may be a day ahead of ours, no more). It
  fills the monthly partition of that date (``2026-12-10`` -> ``2026-12-01``). ISO dates with hyphens only:
  ``20261210`` could as well be a record count or a batch number, and a name that needs guessing is refused.
* ``_<suffix>`` (optional; letters, digits and ``-`` after one underscore) tells apart two drops sent the same
  day: ``2026-12-10_v2.csv``, ``2026-12-10_part-2.csv``. Both fill December; a resent file with the same content
  (sha256) is loaded once.
* ``<ext>`` is the extension the feed's contract agrees (``format.extension``, else the one of ``format.type``:
  csv, xlsx, jsonl), in any letter case (Windows partners send ``.CSV``). Nothing else: ``2026-12-05.csv.bak`` is
  a backup, not a second drop.

Every other entry in ``landing/`` is **rejected** and accounted for, never skipped in silence: a
:class:`LandingFile` with a reason (``landing_<why>: ...``) that names the rule and a fix (usually the exact
rename). Ingest records each in ``ops.load_log`` (status ``rejected``) and ``ops.quarantine`` (no partition, no
line) every time it runs until the file is fixed; the sensor and ``placelink refresh`` report them too. What is
rejected:

* names that do not follow the rule (no date, impossible or out-of-range date, other extension, other shape);
* hidden, editor and partly uploaded files (``.x``, ``~$x.xlsx``, ``x~``, ``*.part``, ``*.tmp``, ...): reported
  as temporary (an upload in progress is expected to disappear or be renamed), but reported;
* **symbolic links** (to a file or a folder, inside the home or not) and anything that is not a regular file
  (folders inside a feed folder, FIFOs, devices, sockets). Classified from ``lstat`` only: a link is never
  followed, its target never opened or named, so nothing outside the landing tree can be read through it;
* files directly in ``landing/`` or ``landing/<partner>/``, and in folders that are no feed of any contract.

Only names are read here (and ``lstat``), never contents; names are shown with non-printable characters escaped.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import re
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from orchestration.lib.config import PARTITION_START

#: The rule, as people read it (in every rejection reason).
RULE = "landing/<partner>/<feed>/<YYYY-MM-DD>[_<suffix>].<ext>"
#: Status of a rejected file in ``ops.load_log``.
REJECTED = "rejected"

_NAME = re.compile(r"(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})(?:_(?P<suffix>[A-Za-z0-9][A-Za-z0-9-]{0,63}))?"
                   r"\.(?P<ext>[A-Za-z0-9]{1,16})")
_LEADING_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_ANY_DATE = re.compile(r"(?<![0-9])([0-9]{4})-?([0-9]{2})-?([0-9]{2})(?![0-9])")
#: hidden files, Office/LibreOffice lock files, editor backups and swap files, partial uploads and downloads
_TEMPORARY = re.compile(r"^[.~]|^#.*#$|~$|\.(part|partial|tmp|temp|crdownload|filepart|download|swp|swo|swx|lock)$",
                        re.IGNORECASE)


@dataclass(frozen=True)
class LandingFile:
    """One entry of the landing tree: a drop (``drop_date`` set) or a rejected file (``reason`` set)."""

    path: Path                       # where it is (opened only when it is a drop)
    rel: str                         # relative to the landing folder, printable (non-printables escaped)
    partner: str | None = None       # the folder it sits in, when it sits in one
    feed: str | None = None
    drop_date: dt.date | None = None
    modified: float = 0.0            # lstat mtime (POSIX seconds)
    reason: str | None = None        # ``landing_<why>: ...`` for a rejected file
    fix: str | None = None

    @property
    def is_drop(self) -> bool:
        return self.drop_date is not None

    @property
    def partition(self) -> str | None:
        """The monthly partition (``YYYY-MM-01``) a drop fills; None for a rejected file."""
        return self.drop_date.replace(day=1).isoformat() if self.drop_date else None

    @property
    def reason_code(self) -> str | None:
        return self.reason.split(":", 1)[0] if self.reason else None


#: undecodable bytes (surrogates from surrogateescape), lone surrogates and control characters: C0 except
#: TAB/LF/CR, DEL and C1
_RAW_UNPRINTABLE = re.compile("[\ud800-\udfff\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _shown(char: str) -> str:
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that did not decode (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    return f"\\u{code:04x}" if code > 0xFF else f"\\x{code:02x}"


def printable(text: str, *, raw: bool = False) -> str:
    """Text safe to print and store, the one rule for file names and partner text: undecodable bytes, lone
    surrogates (UTF-8 cannot store them) and control characters as ``\\xNN``/``\\uNNNN``, so nothing can carry a
    terminal escape or a forged line into a log. A file name (default) has every non-printable character escaped,
    newlines and tabs included, and is capped at 200 characters; ``raw`` text of a record keeps TAB, LF and CR
    (a quoted field may span lines) and is not capped (the reader caps it)."""
    if raw:
        return _RAW_UNPRINTABLE.sub(lambda m: _shown(m[0]), text)
    text = "".join(c if c.isprintable() else _shown(c) for c in text)
    return text if len(text) <= 200 else text[:200] + "..."


def _today(today: dt.date | None) -> dt.date:
    return today or dt.datetime.now(dt.UTC).date()


def _example(date: dt.date | None, ext: str, today: dt.date | None) -> str:
    return f"{(date or _today(today)).isoformat()}.{ext}"


def classify_name(name: str, extension: str | None, *, today: dt.date | None = None
                  ) -> tuple[dt.date | None, str | None, str | None]:
    """``(drop_date, None, None)`` for a drop's name, else ``(None, reason, fix)``.

    Args:
        name: the file name (no folder).
        extension: the feed contract's extension (without the dot); None accepts any one extension (only for
            callers that know no contract, e.g. tests reading a generated county).
        today: the day "future" is measured from (default: today, UTC).
    """
    ext = (extension or "").lower()
    shown_ext = ext or "<ext>"
    rule = f"drops are named {RULE.replace('<ext>', shown_ext)}"
    found = _ANY_DATE.search(name)
    found_date = None
    if found:
        try:
            found_date = dt.date(int(found[1]), int(found[2]), int(found[3]))
        except ValueError:
            found_date = None
    if _TEMPORARY.search(name):
        return None, (f"landing_temporary: a hidden, editor or partly uploaded file (name starts with '.' or '~', "
                      f"or ends in '~', .part, .tmp, ...); it was not read; {rule}"), \
            (f"if the upload has finished, rename it to {_example(found_date, shown_ext, today)}; otherwise "
             "delete it (or wait for the upload or the editor to finish)")
    lead = _LEADING_DATE.match(name)
    if not lead:
        return None, f"landing_name: the name does not start with the drop date (YYYY-MM-DD); {rule}", \
            (f"rename it to {_example(found_date, shown_ext, today)}" if found_date else
             f"rename it to the day it was sent, e.g. {_example(None, shown_ext, today)}")
    try:
        day = dt.date(int(lead[1]), int(lead[2]), int(lead[3]))
    except ValueError:
        return None, f"landing_name: {lead[0]} is not a calendar date; {rule}", \
            f"rename it to the real day it was sent, e.g. {_example(None, shown_ext, today)}"
    match = _NAME.fullmatch(name)
    rest = name[len(lead[0]):]
    if match is None or (ext and match["ext"].lower() != ext):
        shape = re.fullmatch(r"(_[A-Za-z0-9][A-Za-z0-9-]{0,63})?\.(.+)", rest)
        if shape and ext and shape[2].lower() != ext:
            return None, (f"landing_extension: the extension is not .{ext}, the format the feed's contract agrees "
                          f"(backups and copies such as .{ext}.bak are not drops); {rule}"), \
                (f"move backups and copies out of landing/; if this is the drop itself in the agreed format, "
                 f"rename it to {day.isoformat()}{shape[1] or ''}.{ext}")
        return None, (f"landing_name: after the date only '_<suffix>' (letters, digits, '-') and the extension may "
                      f"follow; {rule}"), f"rename it to {day.isoformat()}.{shown_ext} (or {day.isoformat()}_v2." \
                                          f"{shown_ext} for a second drop that day)"
    if day < dt.date.fromisoformat(PARTITION_START):
        return None, (f"landing_date_out_of_range: the drop date {day.isoformat()} is before {PARTITION_START}, the "
                      f"first month placelink has partitions for; {rule}"), \
            "rename it to the day it was really sent (YYYY-MM-DD)"
    if day > _today(today) + dt.timedelta(days=1):
        return None, (f"landing_date_out_of_range: the drop date {day.isoformat()} is in the future; {rule} with "
                      "the day it was sent"), "rename it to the day it was really sent (YYYY-MM-DD)"
    return day, None, None


def leading_date(name: str) -> dt.date | None:
    """The calendar date a name starts with, whatever follows (``2017-12-04_v2.csv``, ``2017-12-04.csv.bak``), for
    retention: a second drop or a backup of an old drop is as old as the drop, drop or not."""
    lead = _LEADING_DATE.match(name)
    try:
        return dt.date(int(lead[1]), int(lead[2]), int(lead[3])) if lead else None
    except ValueError:
        return None


def partition_of(name: str, extension: str | None = None, *, today: dt.date | None = None) -> str | None:
    """The monthly partition (``YYYY-MM-01``) of a drop named ``name``; None when the rule rejects the name."""
    day, _, _ = classify_name(name, extension, today=today)
    return day.replace(day=1).isoformat() if day else None


# --- walking the landing tree (lstat only: nothing is followed or opened) ------------------------------

_SYMLINK = ("landing_symlink: a symbolic link; placelink never follows links out of or within landing/ and did "
            f"not open it (drops are regular files, {RULE})")
_SYMLINK_FIX = "copy the file itself into the feed folder under its drop name, then remove the link"


def _entries(folder: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError:
        return []


def _rejected(entry: os.DirEntry, rel: str, partner: str | None, feed: str | None, reason: str, fix: str
              ) -> LandingFile:
    try:
        modified = entry.stat(follow_symlinks=False).st_mtime
    except OSError:
        modified = 0.0
    return LandingFile(Path(entry.path), rel, partner, feed, modified=modified, reason=reason, fix=fix)


def _not_regular(entry: os.DirEntry, rel: str, partner: str | None, feed: str | None) -> LandingFile | None:
    """A rejection for a link, folder or special file; None for a regular file."""
    if entry.is_symlink():
        return _rejected(entry, rel, partner, feed, _SYMLINK, _SYMLINK_FIX)
    try:
        mode = entry.stat(follow_symlinks=False).st_mode
    except OSError:
        return _rejected(entry, rel, partner, feed, "landing_not_a_file: it vanished or cannot be read",
                         "check the file's permissions, then rerun")
    if stat.S_ISREG(mode):
        return None
    what = "a folder" if stat.S_ISDIR(mode) else "a named pipe, device or socket"
    return _rejected(entry, rel, partner, feed,
                     f"landing_not_a_file: {what}, not a regular file; it was not opened ({RULE})",
                     "move its files into the feed folder itself" if stat.S_ISDIR(mode) else "remove it")


def _scan_folder(folder: Path, prefix: str, partner: str, feed: str, extension: str,
                 today: dt.date | None) -> list[LandingFile]:
    out = []
    for entry in _entries(folder):
        rel = f"{prefix}/{printable(entry.name)}"
        odd = _not_regular(entry, rel, partner, feed)
        if odd is not None:
            out.append(odd)
            continue
        day, reason, fix = classify_name(entry.name, extension, today=today)
        if day is None and _is_manifest_of_drop(folder, entry.name, extension, today):
            # an encoded drop's manifest (``<drop>.manifest.json``): read and accounted for with its drop
            continue
        if day is None:
            out.append(_rejected(entry, rel, partner, feed, reason or "landing_name", fix or ""))
        else:
            out.append(LandingFile(Path(entry.path), rel, partner, feed, drop_date=day,
                                   modified=entry.stat(follow_symlinks=False).st_mtime))
    return out


MANIFEST_SUFFIX = ".manifest.json"


def _is_manifest_of_drop(folder: Path, name: str, extension: str, today: dt.date | None) -> bool:
    """``<YYYY-MM-DD>[_<suffix>].manifest.json`` beside a CSV feed's drops: the manifest ``placelink-partner``
    writes with each encoded drop (``orchestration.lib.partner_drop``), when that drop is there. Ingest refuses
    an encoded drop whose manifest is missing or does not match, so a manifest is never skipped unaccounted."""
    if extension.lower() != "csv" or not name.endswith(MANIFEST_SUFFIX):
        return False
    drop = name[: -len(MANIFEST_SUFFIX)] + ".csv"
    # a manifest without its drop is an odd file like any other: rejected and reported
    return classify_name(drop, extension, today=today)[0] is not None and (Path(folder) / drop).is_file()


def _folder_entry(landing: Path, partner: str, feed: str) -> tuple[Path, LandingFile | None]:
    """The feed folder, or the rejection of a link standing in for it (or for its partner folder)."""
    for rel in (partner, f"{partner}/{feed}"):
        path = landing / rel
        if path.is_symlink():
            return path, LandingFile(path, printable(rel), partner, feed, modified=path.lstat().st_mtime,
                                     reason=_SYMLINK, fix="make it a real folder holding the drops themselves")
    return landing / partner / feed, None


def scan_feed(landing: Path, partner: str, feed: str, extension: str, *, today: dt.date | None = None
              ) -> list[LandingFile]:
    """Every entry of one feed's folder ``landing/<partner>/<feed>/``, by name: drops and rejected files."""
    folder, link = _folder_entry(Path(landing), partner, feed)
    if link is not None:
        return [link]
    if not folder.is_dir():
        return []
    return _scan_folder(folder, f"{partner}/{feed}", partner, feed, extension, today)


def _strays(folder: Path, prefix: str, partner: str | None, feed: str | None, reason: str, fix: str
            ) -> list[LandingFile]:
    """Every entry under a folder that is no feed's (links and special files named as such, never followed)."""
    out = []
    for entry in _entries(folder):
        rel = f"{prefix}/{printable(entry.name)}" if prefix else printable(entry.name)
        odd = _not_regular(entry, rel, partner, feed)
        if odd is not None and odd.reason_code == "landing_not_a_file" and entry.is_dir(follow_symlinks=False):
            out += _strays(Path(entry.path), rel, partner, feed, reason, fix)
        else:
            out.append(odd or _rejected(entry, rel, partner, feed, reason, fix))
    return out


def scan_landing(landing: Path, extensions: Mapping[tuple[str, str], str], *, today: dt.date | None = None
                 ) -> list[LandingFile]:
    """Every entry of the landing tree, as drops and rejected files.

    Args:
        landing: the landing folder (``<home>/landing``; it may itself be a link an operator set up).
        extensions: ``(partner, feed) -> extension`` of every feed with a contract (:func:`contract_extensions`).
    """
    landing = Path(landing)
    if not landing.is_dir():
        return []
    feeds_of: dict[str, set[str]] = {}
    for partner, feed in extensions:
        feeds_of.setdefault(partner, set()).add(feed)
    out: list[LandingFile] = []
    misplaced = f"landing_outside_feed: not in a feed folder; {RULE}"
    for entry in _entries(landing):
        name = printable(entry.name)
        if entry.is_symlink() or not entry.is_dir(follow_symlinks=False):
            out.append(_not_regular(entry, name, None, None) or _rejected(
                entry, name, None, None, misplaced, "move it into landing/<partner>/<feed>/ under its drop name"))
            continue
        if entry.name not in feeds_of:
            out += _strays(Path(entry.path), name, entry.name, None,
                           f"landing_outside_feed: no contract has a partner '{name}'; {RULE}",
                           "check the folder name against the partner ids in orchestration/feeds/*.yml")
            continue
        for sub in _entries(Path(entry.path)):
            rel = f"{name}/{printable(sub.name)}"
            if sub.is_symlink() or not sub.is_dir(follow_symlinks=False):
                out.append(_not_regular(sub, rel, entry.name, None) or _rejected(
                    sub, rel, entry.name, None, misplaced,
                    f"move it into landing/{name}/<feed>/ under its drop name"))
            elif sub.name in feeds_of[entry.name]:
                out += _scan_folder(Path(sub.path), rel, entry.name, sub.name,
                                    extensions[(entry.name, sub.name)], today)
            else:
                out += _strays(Path(sub.path), rel, entry.name, sub.name,
                               f"landing_outside_feed: partner '{name}' has no feed '{printable(sub.name)}' in its "
                               f"contract; {RULE}",
                               f"check the folder name against the feed ids in orchestration/feeds/{name}.yml")
    return out


def contract_extensions(feeds: Iterable | None = None) -> dict[tuple[str, str], str]:
    """``(partner, feed) -> extension`` of every feed (default: every contract in ``orchestration/feeds``, read
    again only when a contract file changes: the planner and test locations ask for each feed)."""
    if feeds is not None:
        return {(f.partner, f.id): f.drop_extension for f in feeds}
    from orchestration.lib.contracts import FEEDS_DIR, LINKAGE_ENV, LINKAGE_KEY_CHECK_ENV

    files = sorted([*FEEDS_DIR.glob("*.yml"), *FEEDS_DIR.glob("*.yaml")])
    # the deployment's linkage switch changes encoded feeds' extension: part of the cache key
    signature = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files) + (
        os.environ.get(LINKAGE_ENV), os.environ.get(LINKAGE_KEY_CHECK_ENV))
    return dict(_default_extensions(signature))


@functools.lru_cache(maxsize=2)
def _default_extensions(signature: tuple) -> tuple[tuple[tuple[str, str], str], ...]:  # noqa: ARG001 - cache key
    from orchestration.lib.contracts import load_contracts

    return tuple(contract_extensions(load_contracts().feeds()).items())


def open_drop(path: Path, mode: str = "rb"):
    """Open a drop for reading without following a link (``O_NOFOLLOW``): a file swapped for a link between the
    scan and the read is refused, not followed."""
    # O_NONBLOCK: opening a FIFO put in place of the file must not hang (it is refused just below)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{printable(Path(path).name)} is not a regular file")
        return os.fdopen(fd, mode)
    except BaseException:
        os.close(fd)
        raise
