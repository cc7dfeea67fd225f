"""Render ``docs/data-dictionary.md`` from the feed contracts and the configured defect rates.

The dictionary is generated, not hand-kept, so it cannot drift from the contracts the pipeline loads; a test
checks the committed file equals :func:`render_data_dictionary`.

    uv run python -m orchestration.lib.synthetic.dictionary > docs/data-dictionary.md
"""

from __future__ import annotations

from orchestration.lib.synthetic.config import DefectRates

NAME_DEFECTS = ["nickname", "typo_given_name", "typo_family_name", "surname_hyphenated", "surname_changed",
                "name_swap", "missing_field (given name)"]
DOB_DEFECTS = ["dob_day_month_swap", "dob_off_by_one", "missing_field (date of birth)",
               "implausible_date (a DOB defect that puts the birth after the event or the drop: quarantined)"]
POSTCODE_DEFECTS = ["missing_field (postcode)", "postcode_no_space", "postcode_lowercase", "postcode_one_char_wrong"]
ADDRESS_DEFECTS = ["address styles (abbreviations, upper/lower case, flat notation)", "address_missing_town"]
NHS_DEFECTS = ["missing_field (NHS number)", "invalid_nhs_number"]
COMMON = ["duplicate_row", "late_record", "wrong_column_count", "impossible_date", "bad_encoding"]

#: which injected defects each feed can carry (mirrors the renderers in feeds.py)
FEED_DEFECTS: dict[str, list[str]] = {
    "police/street_crimes": COMMON,
    "police/person_records": NAME_DEFECTS + DOB_DEFECTS + POSTCODE_DEFECTS + ADDRESS_DEFECTS + COMMON,
    "county_council/social_care_referrals": NAME_DEFECTS + DOB_DEFECTS + POSTCODE_DEFECTS + ADDRESS_DEFECTS
    + ["missing_field (NHS number, 30%)", "invalid_nhs_number"] + [c for c in COMMON if c != "bad_encoding"],
    "county_council/school_attendance": NAME_DEFECTS + DOB_DEFECTS + POSTCODE_DEFECTS + COMMON,
    "district_councils/homelessness_presentations": NAME_DEFECTS + DOB_DEFECTS + POSTCODE_DEFECTS
    + ADDRESS_DEFECTS + COMMON,
    "district_councils/asb_complaints": NAME_DEFECTS + ["missing_field (subject_name, 30%: name not known)"]
    + POSTCODE_DEFECTS + ADDRESS_DEFECTS + ["uprn missing (40%, not a defect: unmatched address)"] + COMMON,
    "nhs/ae_attendances": NAME_DEFECTS + DOB_DEFECTS + POSTCODE_DEFECTS + NHS_DEFECTS
    + ["duplicate_row", "late_record", "invalid_json (truncated line)", "impossible_date", "bad_encoding"],
    "voluntary/food_bank_referrals": ["nickname", "typo_given_name", "missing_field (given name)"]
    + POSTCODE_DEFECTS + COMMON,
    "fire/safe_and_well_visits": NAME_DEFECTS + DOB_DEFECTS + POSTCODE_DEFECTS + ADDRESS_DEFECTS
    + ["UPRN missing (20%, not a defect)"] + COMMON,
}

CODES = """\
## Code lists

- **Ethnicity**: `reference/ethnicity_codes.csv` maps every code to its label and ONS 2021 high-level group
  (`scheme` = `ons_2021` text labels in homelessness, `nhs` letters A-S/Z in A&E, `dfe` CIN codes in social care).
- **Crime type / Last outcome category**: police.uk categories (anti-social behaviour is not in this feed).
- **role** (police person records): `victim`, `offender`, `suspect`, `missing_person`; **offence_group** is the
  Home Office offence group, `Missing person` for missing-person reports.
- **Primary Need Code**: CIN census N1 abuse or neglect, N2 child's disability, N3 parental illness or disability,
  N4 family in acute stress, N5 family dysfunction, N6 socially unacceptable behaviour, N7 low income, N8 absent
  parenting, N9 cases other than children in need.
- **sen_status**: N none, K SEN support, E education, health and care plan.
- **A&E chief_complaint_snomed**: 29857009 chest pain, 21522001 abdominal pain, 267036007 breathlessness,
  25064002 headache, 386661006 fever, 422400008 vomiting, 125605004 fracture, 262525000 limb injury,
  248062006 self-injurious behaviour, 7200002 alcohol intoxication, 225444004 at risk of harm, 74732009 mental
  health crisis, 371708003 assault injury. **discharge_destination**: 306689006 home, 306706006 admitted to ward,
  19712007 transferred, 183665006 left before treatment, 305398007 died. **sex**: 1 male, 2 female, 9 indeterminate.
- **DutyOwed / ReasonForLoss**: H-CLIC-style text values; **Crisis Type**: food bank crisis categories.
"""


def _mapping(mapping) -> str:
    """``given_name <- forename, ...`` for a contract's person or place mapping; "none" when it has none."""
    if mapping is None or not mapping.columns():
        return "none"
    return ", ".join(f"`{field}` ← " + " + ".join(f"`{c}`" for c in cols) for field, cols in mapping.columns().items())


def render_data_dictionary() -> str:
    from orchestration.lib.contracts import load_contracts

    rates = DefectRates().as_dict()
    lines = [
        "# Data dictionary: partner feeds",
        "",
        "Generated from the feed contracts (`orchestration/feeds/*.yml`) by",
        "`uv run python -m orchestration.lib.synthetic.dictionary > docs/data-dictionary.md`; do not edit by hand.",
        "The synthetic county (`placelink generate`, docs/synthetic-county.md) writes every feed exactly in this shape.",
        "Identifier: **direct** identifies a person on its own (names, NHS number, full DOB, free-text address,",
        "pupil number); **quasi** identifies in combination (postcode, UPRN, sex, ethnicity, age band).",
        "Columns outside the agreement's `allowed_columns` are dropped at ingest (marked *not shared*).",
        "",
    ]
    for feed in load_contracts().feeds():
        key = f"{feed.partner}/{feed.id}"
        fmt = feed.format
        shape = fmt.type if fmt.type != "csv" else f"csv, delimiter {fmt.delimiter!r}"
        enc = "" if fmt.type == "excel" else f", encoding {fmt.encoding}"
        sheet = f", sheet {fmt.sheet}" if fmt.sheet else ""
        lines += [
            f"## `{key}`",
            "",
            feed.description.strip(),
            "",
            f"- file: `landing/{key}/<YYYY-MM-DD>.{fmt.file_extension}` ({shape}{enc}{sheet}), one drop a month",
            f"- record id: `{' | '.join(feed.record_id_columns)}`; event date: "
            f"`{feed.event_date.column if feed.event_date else '-'}`",
            f"- agreement: {feed.agreement.id}, purposes {', '.join(feed.agreement.purposes)}; "
            f"retention {feed.agreement.retention_months} months; national data opt-out "
            f"{'applied' if feed.agreement.national_data_opt_out else 'not applicable'}",
            f"- people (standard person record): {_mapping(feed.person)}",
            f"- place: {_mapping(feed.place)}",
            "",
            "| column | type | required | identifier | meaning |",
            "|---|---|---|---|---|",
        ]
        allowed = set(feed.agreement.allowed_columns)
        for c in feed.columns:
            typ = c.type + (f" `{c.format}`" if c.format else "")
            note = (c.description or "").replace("|", "\\|")
            if c.name not in allowed:
                note = f"*not shared (dropped at ingest)*; {note}"
            lines.append(f"| {c.name} | {typ} | {'yes' if c.required else ''} | "
                         f"{c.identifier if c.identifier != 'none' else ''} | {note} |")
        lines += ["", "Injected defects: " + ", ".join(f"`{d}`" if " " not in d else d
                                                        for d in FEED_DEFECTS.get(key, COMMON)) + ".", ""]
    lines += [CODES, "## Defect rates (configured in `orchestration/lib/synthetic/config.py`, `DefectRates`)", "",
              "Probability per eligible record (a record that has the field; a DOB day/month swap needs day <= 12).",
              "Every injected defect is logged in `truth/defects.parquet` with file, line, record id and column.", "",
              "| defect | rate |", "|---|---|"]
    lines += [f"| `{k}` | {v:g} |" for k, v in rates.items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render_data_dictionary(), end="")
