"""Attacks on the published file: can a reader get a suppressed count back by arithmetic on published cells?

The published file is the one ``placelink publish`` wrote for the synthetic dbt fixture county (session fixture
``dbt_warehouse``: every model built, then published). The attacker reads only that CSV and public facts
(crimes_total is "All street-level crimes": the sum of the crime types). Then the four-eyes approval of that
file, through the CLI: the approver is the acting account, authorised and not the exporter.
"""

from __future__ import annotations

import pandas as pd

from orchestration.lib.config import get_settings


def _published(home) -> pd.DataFrame:
    return pd.read_csv(get_settings(home=home).published / "place_monthly_indicators.csv")


def _one_step_differences(published: pd.DataFrame, parents: dict[str, str]) -> pd.DataFrame:
    """Every cell given away by total minus the published parts: per month and area, a parent (crimes_total)
    whose parts (the crime types) are all published but one, or a hidden parent whose parts are all published."""
    found = []
    children: dict[str, list[str]] = {}
    for child, parent in parents.items():
        children.setdefault(parent, []).append(child)
    for parent, parts in children.items():
        rows = published[published["indicator"].isin([parent, *parts])]
        for (month, level, area), cell in rows.groupby(["month", "geography_level", "area_code"]):
            by = cell.set_index("indicator")
            hidden = [i for i in [parent, *parts] if by.loc[i, "is_suppressed"]]
            if len(hidden) != 1:
                continue
            shown_parts = by.loc[[p for p in parts if p not in hidden], "event_count"].sum()
            value = by.loc[parent, "event_count"] - shown_parts if hidden[0] != parent else shown_parts
            found.append((month, level, area, hidden[0], value))
    return pd.DataFrame(found, columns=["month", "geography_level", "area_code", "indicator", "recovered"])


def test_crimes_total_minus_the_published_crime_types_recovers_nothing(dbt_warehouse):
    published = _published(dbt_warehouse)
    # what the attacker knows from the labels alone: crimes_total is "All street-level crimes", the sum of the
    # crime types (independent of the seed's parent column, which is the defence's statement of the same fact)
    parents = {i: "crimes_total" for i in published["indicator"].unique()
               if i.startswith("crimes_") and i != "crimes_total"}
    assert len(parents) >= 10
    crimes = published[published["indicator"].str.startswith("crimes_")]
    assert crimes["is_suppressed"].any(), "nothing suppressed: the attack would prove nothing"
    recovered = _one_step_differences(published, parents)
    assert recovered.empty, f"{len(recovered)} suppressed cell(s) recovered by differencing:\n{recovered.head(10)}"


# --- four eyes: the second pair of eyes is a different, authorised OS account ------------------------------------

def _cli(*args):
    from typer.testing import CliRunner

    from orchestration.cli import app

    return CliRunner(env={"COLUMNS": "400"}).invoke(app, [str(a) for a in args])


def _act_as(monkeypatch, account: str) -> None:
    """One test process is one OS user: set the account the governance code reads (audit.current_user)."""
    from orchestration.lib.governance import audit

    monkeypatch.setattr(audit, "current_user", lambda: account)


def test_approve_export_through_the_cli_refuses_the_exporter_strangers_and_typed_names(
        dbt_warehouse, tmp_path, monkeypatch):
    import shutil

    from orchestration.lib.governance.audit import read_events, record_event
    from orchestration.lib.governance.outputs import release_status

    home = tmp_path / "home"
    shutil.copytree(dbt_warehouse, home)
    s = get_settings(home=home)
    s.roles_file.parent.mkdir(parents=True, exist_ok=True)  # the administrator's role file (identity)
    s.roles_file.write_text("approver: {users: [sam.engineer, olu.checker]}\npublic: {users: ['*']}\n")
    s.roles_file.chmod(0o644)
    record_event(s, action="export", target="placelink publish", who="sam.engineer")

    _act_as(monkeypatch, "sam.engineer")  # the exporter, even though authorised
    r = _cli("approve-export", "--home", home)
    assert r.exit_code != 0 and "four eyes" in str(r.exception)
    r = _cli("approve-export", "--by", "olu.checker", "--home", home)  # pretending to be the checker
    assert r.exit_code != 0 and "not a typed-in name" in str(r.exception)

    _act_as(monkeypatch, "mallory")  # not on the list
    r = _cli("approve-export", "--home", home)
    assert r.exit_code != 0 and "does not hold the approver role" in str(r.exception)
    assert not read_events(s, action="approve_export")
    assert {row["status"] for row in release_status(s)} == {"not approved"}

    _act_as(monkeypatch, "olu.checker")
    r = _cli("approve-export", "--home", home)
    assert r.exit_code == 0, r.output
    assert "as olu.checker" in r.output
    assert {row["approved_by"] for row in release_status(s)} == {"olu.checker"}
