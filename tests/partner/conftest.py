"""Fixtures for the partner-side tool: the real police contract switched to encoded linkage, a shared secret and
small native exports written at test time (no county is generated)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from orchestration.lib.contracts import FEEDS_DIR
from orchestration.lib.matching.encoding import SCHEME, key_check_value

SECRET = bytes(range(32))
HEADER = ("record_ref,occurrence_ref,person_ref,role,forename,surname,date_of_birth,gender,address,postcode,"
          "occurrence_date,offence_group,notes")
#: clear rows: (record_ref, forename, surname, dob, gender, address, postcode)
PEOPLE = [
    ("PR1", "Susan", "Gough", "13/11/2010", "F", "37 Rhodes Cl, Eastwold", "SH1 2SA"),
    ("PR2", "SUSAN", "gough", "13/11/2010", "F", "37 Rhodes Close", "sh12sa"),
    ("PR3", "Kieran", "O'Brien-Ellis", "10/03/2014", "M", "23 Joyce Road", "SH1 1LU"),
    ("PR4", "Kieran", "OBrien Ellis", "03/10/2014", "M", "", "SH1 1LU"),
    ("PR5", "Mary", "Edwards", "19/07/1999", "F", "46 Dickinson Rd", "SH1 2YJ"),
]


def export_text(people=PEOPLE, extra: list[str] | None = None) -> str:
    lines = [HEADER]
    for ref, given, family, dob, sex, address, postcode in people:
        lines.append(f'{ref},OCC/2025/1,N1,victim,{given},{family},{dob},{sex},"{address}",{postcode},'
                     f"02/01/2025,Theft,officer note {ref}")
    return "\r\n".join(lines + (extra or [])) + "\r\n"


def write_contract(folder: Path, *, scheme: str = SCHEME, key_check: str | None = None) -> Path:
    data = yaml.safe_load((FEEDS_DIR / "police.yml").read_text(encoding="utf-8"))
    for feed in data["feeds"]:
        feed["linkage"] = {"mode": "encoded", "scheme": scheme, "key_check": key_check or key_check_value(SECRET)}
    path = folder / "police.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def make_partner_dir(folder: Path) -> Path:
    """A partner's folder: the encoded contract and a native export ``export.csv`` (Windows-1252 as agreed)."""
    write_contract(folder)
    (folder / "export.csv").write_bytes(export_text().encode("cp1252"))
    return folder


@pytest.fixture
def partner_dir(tmp_path) -> Path:
    return make_partner_dir(tmp_path)
