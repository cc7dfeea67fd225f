"""Injected defects: each function changes a share of values (vectorised selection) and logs what it did.

Selection is always vectorised; the per-value edit is a small Python function applied only to the selected
values (a few per cent of rows), which keeps county scale fast while letting each edit be realistic.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd

from orchestration.lib.synthetic.config import DefectRates

_KEYBOARD = ["qwertyuiop", "asdfghjkl", "zxcvbnm"]
_NEIGHBOURS: dict[str, str] = {}
for _r, _row in enumerate(_KEYBOARD):
    for _c, _ch in enumerate(_row):
        near = [_row[_c - 1] if _c > 0 else "", _row[_c + 1] if _c + 1 < len(_row) else ""]
        for _dr in (-1, 1):
            if 0 <= _r + _dr < 3:
                other = _KEYBOARD[_r + _dr]
                near += [other[k] for k in (_c - 1, _c) if 0 <= k < len(other)]
        _NEIGHBOURS[_ch] = "".join(n for n in near if n)
POSTCODE_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"
ABBREVIATIONS = {"Road": "Rd", "Street": "St", "Avenue": "Ave", "Close": "Cl", "Lane": "Ln", "Drive": "Dr",
                 "Crescent": "Cres", "Gardens": "Gdns", "Court": "Ct", "Place": "Pl", "Terrace": "Terr",
                 "Grove": "Gr"}


class DefectLog:
    """Collects (row id, defect, column) triples; row ids are the feed's internal ``_rid``."""

    def __init__(self) -> None:
        self.parts: list[pd.DataFrame] = []

    def add(self, rids: np.ndarray, defect: str, column: str) -> None:
        if len(rids):
            self.parts.append(pd.DataFrame({"_rid": np.asarray(rids, dtype=np.int64), "defect": defect,
                                            "column": column}))

    def frame(self) -> pd.DataFrame:
        if not self.parts:
            return pd.DataFrame({"_rid": pd.Series(dtype="int64"), "defect": pd.Series(dtype=object),
                                 "column": pd.Series(dtype=object)})
        return pd.concat(self.parts, ignore_index=True)


def typo(word: str, r: float) -> str:
    """One keyboard slip: neighbour key, dropped, doubled or transposed letter (``r`` in [0, 1) picks which)."""
    if not word or len(word) < 2:
        return word
    i = int(r * 997) % len(word)
    kind = int(r * 4)
    ch = word[i]
    if kind == 0 and ch.lower() in _NEIGHBOURS:
        near = _NEIGHBOURS[ch.lower()]
        new = near[int(r * 7919) % len(near)]
        new = new.upper() if ch.isupper() else new
        return word[:i] + new + word[i + 1:]
    if kind == 1 and len(word) > 3:
        return word[:i] + word[i + 1:]
    if kind == 2:
        return word[:i] + ch + word[i:]
    j = min(i + 1, len(word) - 1)
    if j == i:
        i, j = i - 1, i
    out = word[:i] + word[j] + word[i] + word[j + 1:]
    return out if out != word else word + word[-1]


@cache
def _nickname_table() -> dict[str, tuple[str, ...]]:
    from nicknames import NickNamer

    lookup = NickNamer().nickname_lookup
    return {k: tuple(sorted(n.capitalize() for n in v if len(n) >= 3 and n.isalpha()))
            for k, v in lookup.items() if v}


def nickname_for(names: np.ndarray, r: np.ndarray) -> np.ndarray:
    """A nickname for each name where the `nicknames` package knows one, else None."""
    table = _nickname_table()
    out = np.empty(len(names), dtype=object)
    for k, (name, x) in enumerate(zip(names, r, strict=True)):
        options = table.get(str(name).lower()) if isinstance(name, str) else None
        out[k] = options[int(x * len(options)) % len(options)] if options else None
    return out


def _pick(rng: np.random.Generator, n: int, rate: float, eligible: np.ndarray | None = None) -> np.ndarray:
    mask = rng.random(n) < rate
    if eligible is not None:
        mask &= eligible
    return mask


def corrupt_names(rng: np.random.Generator, df: pd.DataFrame, rates: DefectRates, log: DefectLog,
                  given: str = "given", family: str | None = "family") -> None:
    """Nicknames, typos, swaps, hyphenated/changed surnames and missing given names, in place."""
    n = len(df)
    rid = df["_rid"].to_numpy()
    g = df[given].to_numpy(dtype=object).copy()
    r = rng.random(n)
    nick = nickname_for(g, r)
    m = _pick(rng, n, rates.nickname) & pd.notna(nick)
    g[m] = nick[m]
    log.add(rid[m], "nickname", given)
    m = _pick(rng, n, rates.typo_given_name)
    g[m] = [typo(w, x) for w, x in zip(g[m], r[m], strict=True)]
    log.add(rid[m], "typo_given_name", given)
    if family is not None:
        f = df[family].to_numpy(dtype=object).copy()
        m = _pick(rng, n, rates.typo_family_name)
        f[m] = [typo(w, x) for w, x in zip(f[m], rng.random(int(m.sum())), strict=True)]
        log.add(rid[m], "typo_family_name", family)
        m = _pick(rng, n, rates.surname_hyphenated)
        other = f[rng.permutation(n)]
        f[m] = [f"{a}-{b}" if a != b else a for a, b in zip(f[m], other[m], strict=True)]
        log.add(rid[m], "surname_hyphenated", family)
        m = _pick(rng, n, rates.surname_changed)
        f[m] = f[rng.permutation(n)][m]
        log.add(rid[m], "surname_changed", family)
        m = _pick(rng, n, rates.name_swap)
        g[m], f[m] = f[m].copy(), g[m].copy()
        log.add(rid[m], "name_swap", f"{given}+{family}")
        df[family] = f
    m = _pick(rng, n, rates.missing_given_name)
    g[m] = None
    log.add(rid[m], "missing_field", given)
    df[given] = g


def corrupt_dob(rng: np.random.Generator, df: pd.DataFrame, rates: DefectRates, log: DefectLog,
                col: str = "dob") -> None:
    """Day/month swaps (only where day <= 12), off-by-one day or year, missing."""
    n = len(df)
    rid = df["_rid"].to_numpy()
    d = pd.to_datetime(df[col]).to_numpy().astype("datetime64[D]")
    ts = pd.DatetimeIndex(d)
    day, month, year = ts.day.to_numpy(), ts.month.to_numpy(), ts.year.to_numpy()
    m = _pick(rng, n, rates.dob_day_month_swap, (day <= 12) & (day != month))
    if m.any():
        d[m] = pd.to_datetime(pd.DataFrame({"year": year[m], "month": day[m], "day": month[m]})).to_numpy()
    log.add(rid[m], "dob_day_month_swap", col)
    m = _pick(rng, n, rates.dob_off_by_one)
    if m.any():
        shift_year = rng.random(int(m.sum())) < 0.5
        sign = np.where(rng.random(int(m.sum())) < 0.5, -1, 1)
        d[m] = np.where(shift_year, d[m] + sign * 365, d[m] + sign)
    log.add(rid[m], "dob_off_by_one", col)
    out = d.astype("datetime64[ns]")
    m = _pick(rng, n, rates.missing_dob)
    out[m] = np.datetime64("NaT")
    log.add(rid[m], "missing_field", col)
    df[col] = out


def corrupt_postcode(rng: np.random.Generator, df: pd.DataFrame, rates: DefectRates, log: DefectLog,
                     col: str = "postcode") -> None:
    """At most one of: missing, one character wrong, no space, lower case."""
    n = len(df)
    rid = df["_rid"].to_numpy()
    pc = df[col].to_numpy(dtype=object).copy()
    u = rng.random(n)
    edges = np.cumsum([rates.missing_postcode, rates.postcode_one_char_wrong, rates.postcode_no_space,
                       rates.postcode_lowercase])
    kind = np.searchsorted(edges, u, side="right")
    m = kind == 0
    pc[m] = None
    log.add(rid[m], "missing_field", col)
    m = kind == 1
    r = rng.random(int(m.sum()))
    pc[m] = [p[:-1] + POSTCODE_LETTERS[int(x * 19 + 1 + POSTCODE_LETTERS.index(p[-1])) % 20] for p, x in
             zip(pc[m], r, strict=True)]
    log.add(rid[m], "postcode_one_char_wrong", col)
    m = kind == 2
    pc[m] = [p.replace(" ", "") for p in pc[m]]
    log.add(rid[m], "postcode_no_space", col)
    m = kind == 3
    pc[m] = [p.lower() for p in pc[m]]
    log.add(rid[m], "postcode_lowercase", col)
    df[col] = pc


def render_address(rng: np.random.Generator, df: pd.DataFrame, rates: DefectRates, log: DefectLog,
                   col: str = "address", with_town: bool = True) -> pd.Series:
    """Free-text address in one of several house styles; ``address_missing_town`` drops the town."""
    n = len(df)
    rid = df["_rid"].to_numpy()
    saon = df["saon"].fillna("").astype(str)
    paon = df["paon"].astype(str)
    street = df["street"].astype(str)
    locality = df["locality"].fillna("").astype(str)
    town = df["town"].astype(str)
    style = rng.choice(6, n, p=[0.4, 0.15, 0.15, 0.1, 0.1, 0.1])
    has_saon = saon != ""
    flat_num = saon.str.replace("Flat ", "", regex=False)
    abbreviated = street.str.replace(r"\b(" + "|".join(ABBREVIATIONS) + r")$",
                                     lambda mt: ABBREVIATIONS[mt.group(1)], regex=True)
    line = np.where(has_saon, saon + ", " + paon + " " + street, paon + " " + street)
    line = np.where(style == 2, np.where(has_saon, saon + " " + paon + " " + abbreviated,
                                         paon + " " + abbreviated), line)
    line = np.where((style == 3) & has_saon, flat_num + "/" + paon + " " + street, line)
    line = pd.Series(line, index=df.index)
    missing_town = rng.random(n) < rates.address_missing_town
    log.add(rid[missing_town & with_town], "address_missing_town", col)
    place = np.where(locality != "", locality + ", " + town, town)
    place = np.where(missing_town, np.where(locality != "", locality, ""), place)
    sep = np.where(style == 4, " ", ", ")
    full = np.where(place != "", line + pd.Series(sep, index=df.index) + place, line) if with_town else line
    full = pd.Series(full, index=df.index)
    full = full.where(style != 1, full.str.upper())
    full = full.where(style != 5, full.str.lower())
    return full


def corrupt_nhs(rng: np.random.Generator, df: pd.DataFrame, rates: DefectRates, log: DefectLog,
                col: str = "nhs", missing_rate: float | None = None) -> None:
    """Missing NHS numbers and single-digit errors (which always fail the modulus-11 check)."""
    n = len(df)
    rid = df["_rid"].to_numpy()
    nhs = df[col].to_numpy(dtype=object).copy()
    m = _pick(rng, n, rates.missing_nhs_number if missing_rate is None else missing_rate)
    nhs[m] = None
    log.add(rid[m], "missing_field", col)
    m = _pick(rng, n, rates.invalid_nhs_number) & pd.notna(nhs)
    pos = rng.integers(0, 10, int(m.sum()))
    bump = rng.integers(1, 10, int(m.sum()))
    nhs[m] = [s[:p] + str((int(s[p]) + b) % 10) + s[p + 1:] for s, p, b in zip(nhs[m], pos, bump, strict=True)]
    log.add(rid[m], "invalid_nhs_number", col)
    df[col] = nhs
