"""Validating the YAML files people write (feed contracts, the project register, ML ethics records): one way.

Each file is checked by a pydantic model, and every problem is collected as ``(where, what, fix)`` — never only
the first — so an incomplete file is refused with each field named, in the words of the file (a feed or a column
by its id or name, not by its index), with its fix. :func:`collect_problems` turns a pydantic ``ValidationError``
into those triples; :data:`Answer` is a text field that refuses a placeholder ("TBD", "n/a", "-").

Used by :mod:`orchestration.lib.contracts`, :mod:`orchestration.lib.governance.projects` and :mod:`ml.ethics`;
each keeps its own models and its own table of fixes (their wording names their own documentation).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, ValidationError

#: Answers that are present but say nothing.
PLACEHOLDERS = frozenset({"", "todo", "tbd", "tbc", "n/a", "na", "none", "-", "?"})


def is_placeholder(value: Any) -> bool:
    return value is None or str(value).strip().lower() in PLACEHOLDERS


def _answer(value: str) -> str:
    if is_placeholder(value):
        raise ValueError("needs a real answer, not a placeholder")
    return str(value).strip()


#: A text field that must say something: a placeholder is refused, the answer is stripped.
Answer = Annotated[str, AfterValidator(_answer)]


def location(loc: Iterable[Any], data: Any, labels: tuple[str, ...] = ("id", "name")) -> str:
    """A pydantic error location as the file's author reads it: ``feeds[street_crimes].columns[Crime ID]``.

    A list index is replaced by the item's first non-empty ``labels`` key (an id, a name) when the item is a
    mapping that has one, else kept as the index.
    """
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int) and isinstance(node, list):
            label = str(item)
            if 0 <= item < len(node) and isinstance(node[item], dict):
                label = str(next((node[item][k] for k in labels if node[item].get(k)), item))
            parts[-1:] = [f"{parts[-1] if parts else ''}[{label}]"]
            node = node[item] if 0 <= item < len(node) else None
        else:
            parts.append(str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return ".".join(parts)


def collect_problems(exc: ValidationError, data: Any, where: str, fixes: Mapping[str, str], *, prefix: str = "",
                     labels: tuple[str, ...] = ("id", "name")) -> list[tuple[str, str, str]]:
    """Every error of ``exc`` as ``(where: prefix+field, what, fix)``; ``data`` is what was validated.

    ``what`` is ``missing`` for an absent key, else pydantic's message without its "Value error, " prefix; ``fix``
    comes from ``fixes`` by pydantic's error type (``correct the value`` when the table has none).
    """
    out = []
    for err in exc.errors():
        what = "missing" if err["type"] == "missing" else err["msg"].removeprefix("Value error, ")
        out.append((f"{where}: {prefix}{location(tuple(err['loc']), data, labels)}", what,
                    fixes.get(err["type"], "correct the value")))
    return out
