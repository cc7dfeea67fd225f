"""NHS numbers (modulus 11) and unique pupil numbers (DfE check letter), generated vectorised."""

from __future__ import annotations

import numpy as np

_NHS_WEIGHTS = np.arange(10, 1, -1)  # weights 10..2 for the first nine digits
_UPN_LETTERS = np.array(list("ABCDEFGHJKLMNPQRTUVWXYZ"))  # 23 letters: I, O and S are not used


def nhs_check_digit(first9: np.ndarray) -> np.ndarray:
    """Modulus-11 check digit of 9-digit integers; 10 means "no valid number with these digits"."""
    digits = (np.asarray(first9, dtype=np.int64)[:, None] // 10 ** np.arange(8, -1, -1)) % 10
    remainder = (digits * _NHS_WEIGHTS).sum(axis=1) % 11
    check = 11 - remainder
    return np.where(check == 11, 0, check)


def nhs_number_is_valid(numbers: np.ndarray | list[str]) -> np.ndarray:
    """True where a 10-digit NHS number (spaces allowed) passes the modulus-11 check."""
    arr = np.array([str(n).replace(" ", "") if n is not None else "" for n in numbers], dtype=object)
    ok = np.array([len(s) == 10 and s.isdigit() for s in arr])
    out = np.zeros(len(arr), dtype=bool)
    if ok.any():
        as_int = np.array([int(s) for s in arr[ok]], dtype=np.int64)
        out[ok] = nhs_check_digit(as_int // 10) == as_int % 10
    return out


def make_nhs_numbers(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` unique valid NHS numbers as 10-digit integers (first digit 4-6, like numbers issued in England)."""
    # i * 7919 mod 3e8 is a bijection for i < 3e8 (7919 is coprime to 3e8), so bases never collide.
    offset = int(rng.integers(0, 300_000_000))
    candidates = 400_000_000 + (np.arange(int(n * 1.15) + 50, dtype=np.int64) * 7919 + offset) % 300_000_000
    check = nhs_check_digit(candidates)
    valid = candidates[check != 10] * 10 + check[check != 10]
    valid = valid[:n]
    return valid[rng.permutation(len(valid))]


def format_nhs_number(numbers: np.ndarray) -> np.ndarray:
    """943 476 5919 style (3-3-4)."""
    s = np.char.zfill(np.asarray(numbers, dtype=np.int64).astype(str), 10)
    return np.array([f"{x[:3]} {x[3:6]} {x[6:]}" for x in s], dtype=object)


def make_upns(rng: np.random.Generator, n: int, la_code: int = 909) -> np.ndarray:
    """Unique pupil numbers: check letter + LA code (3) + establishment (4) + year (2) + serial (3)."""
    serial = np.arange(n, dtype=np.int64) + int(rng.integers(0, 1000))
    est = 2000 + (serial // 1000) % 8000
    year = (10 + serial // 8_000_000) % 100
    body = la_code * 10**9 + est * 10**5 + year * 10**3 + serial % 1000  # the 12 digits after the letter
    digits = (body[:, None] // 10 ** np.arange(11, -1, -1)) % 10
    check = _UPN_LETTERS[(digits * np.arange(2, 14)).sum(axis=1) % 23]
    out = np.char.add(check, np.char.zfill(body.astype(str), 12)).astype(object)
    return out[rng.permutation(n)]
