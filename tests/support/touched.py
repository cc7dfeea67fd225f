"""Which paths under a folder the code in a block opens, lists, creates, renames or removes.

Python's audit hooks (PEP 578) see every ``open()``, directory listing (``os.listdir``/``os.scandir``, so
``Path.iterdir``/``glob``/``os.walk``) and file-system change made from Python in this process, whichever library
makes it. A bare ``stat`` (``Path.exists``) raises no audit event, and neither do files opened inside a C
extension (a DuckDB database): pair a watch with a check of what the folder holds afterwards.

A hook cannot be removed once added, so one hook is added the first time a watch starts; it does nothing while
no watch is active.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

#: audit events whose arguments name a path (https://docs.python.org/3/library/audit_events.html)
_PATH_EVENTS = frozenset({
    "open", "os.listdir", "os.scandir", "os.mkdir", "os.remove", "os.rmdir", "os.rename", "os.chmod", "os.chown",
    "os.link", "os.symlink", "os.truncate", "os.utime", "shutil.copyfile", "shutil.copymode", "shutil.copystat",
    "shutil.copytree", "shutil.move", "shutil.rmtree", "glob.glob",
})

_watches: list[tuple[tuple[str, ...], list[str]]] = []
_hooked = False


def _hook(event: str, args: tuple) -> None:
    if not _watches or event not in _PATH_EVENTS:
        return
    for arg in args:
        if isinstance(arg, bytes):
            arg = os.fsdecode(arg)
        elif isinstance(arg, os.PathLike):
            arg = os.fspath(arg)
        if not isinstance(arg, str):
            continue
        path = os.path.abspath(arg)
        for roots, seen in _watches:
            if any(path == r or path.startswith(r + os.sep) for r in roots):
                seen.append(f"{event} {path}")


@contextlib.contextmanager
def touches(folder: Path) -> Iterator[list[str]]:
    """``with touches(home) as seen:`` -- ``seen`` lists each ``"<event> <path>"`` under ``folder`` in the block."""
    global _hooked
    if not _hooked:
        sys.addaudithook(_hook)
        _hooked = True
    roots = tuple({os.path.abspath(folder), os.path.realpath(folder)})
    seen: list[str] = []
    watch = (roots, seen)
    _watches.append(watch)
    try:
        yield seen
    finally:
        _watches.remove(watch)
