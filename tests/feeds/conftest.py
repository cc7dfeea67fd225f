"""Fixtures for the feed tests: a home with the small ``acme`` contract and hand-made drops."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
CONTRACTS = FIXTURES / "contracts"

VISITS_HEADER = "Visit Ref;Visit Date;Forename;Surname;DOB;Gender;Postcode;NHS Number;Notes;Score"
# (line 1 is the header) — the expected fate of each line is in the comment. Dated on or before the default drop
# date 2025-03-04 (+1 day): a visit after the day its file was written is implausible and quarantined (#22).
VISITS_ROWS = [
    "V1;03/03/2025;Zoë;O'Brien;12/05/1980;F;sh1 2ab;943 476 5919;SECRET-NOTE-1;3",   # 2 loaded
    "V2;04/03/2025;Tom;Smith;01/01/1990;M;SH1 3CD;;too;many;fields",                  # 3 wrong_column_count
    "V3;31/02/2025;Ann;Jones;02/02/1970;F;SH1 4EF;;;1",                                # 4 invalid_date
    "V4;05/03/2025;B\x81rt;Brown;03/03/1960;M;SH1 5GH;;;2",                            # 5 bad_encoding
    "V1;03/03/2025;Zoë;O'Brien;12/05/1980;F;sh1 2ab;943 476 5919;SECRET-NOTE-1;3",   # 6 loaded (duplicate row)
    "V5;02/03/2025;Olive;Optout;04/04/1950;F;SH1 6JK;401 023 2137;;1",                 # 7 opted out
    "V6;01/03/2025;Ian;Wright;05/05/2000;M;SH12AB;;SECRET-NOTE-2;",                    # 8 loaded
]


def write_visits(home: Path, name: str = "2025-03-04.csv", rows: list[str] | None = None,
                 header: str = VISITS_HEADER) -> Path:
    path = home / "landing" / "acme" / "visits" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\r\n".join([header, *(VISITS_ROWS if rows is None else rows)]) + "\r\n"
    # Windows-1252 as the contract says; \x81 is written as the raw byte 0x81 (undefined in cp1252)
    data = text.replace("\x81", "\udc81").encode("windows-1252", errors="surrogateescape")
    path.write_bytes(data)
    return path


def write_attendances(home: Path, name: str = "2025-03-05.jsonl", rows: list[dict] | None = None) -> Path:
    path = home / "landing" / "acme" / "attendances" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = rows if rows is not None else [
        {"attendance_id": "A1", "nhs_number": "9434765919", "forename": "ZOE", "surname": "O'Brien",
         "date_of_birth": "1980-05-12", "sex": "2", "postcode": "SH1 2AB",
         "arrival_datetime": "2025-03-02T10:00:00", "acuity": 3},
        {"attendance_id": "A2", "nhs_number": None, "forename": "Kim", "surname": "Lee",
         "date_of_birth": "1999-09-09", "sex": "1", "postcode": "SH9 9ZZ",
         "arrival_datetime": "2025-03-03T11:30:00", "acuity": 2},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def write_referrals(home: Path, name: str = "2025-03-06.xlsx") -> Path:
    from openpyxl import Workbook

    path = home / "landing" / "acme" / "referrals" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    wb = Workbook()
    ws = wb.active
    ws.title = "Referrals"
    ws.append(["Referral ID", "Referral Date", "Child Name", "Postcode", "Need"])
    ws.append([101, dt.datetime(2025, 3, 1), "Amy Jo Carter", "SH1 2AB", "N1"])
    ws.append([102, "not a date", "Ben Carter", "SH1 2AB", "N2"])
    ws.append([103, dt.datetime(2025, 3, 2), "Cal Carter", "SH1 2AB", "N1", "stray"])
    wb.save(path)
    return path


@pytest.fixture
def acme_home(tmp_path) -> Path:
    """A home whose reference folder lists one opted-out NHS number."""
    home = tmp_path / "acme_home"
    (home / "reference").mkdir(parents=True)
    (home / "reference" / "nhs_opt_outs.csv").write_text("nhs_number\n401 023 2137\n", encoding="utf-8")
    return home
