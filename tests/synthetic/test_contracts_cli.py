"""The generator agrees with the feed contracts, is deterministic, and runs from the CLI."""

from __future__ import annotations

import hashlib
import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from orchestration.lib.contracts import load_contracts
from orchestration.lib.errors import PlacelinkError
from orchestration.lib.synthetic import FEEDS, generate_county
from orchestration.lib.synthetic.dictionary import render_data_dictionary
from orchestration.lib.synthetic.feeds import SPECS
from tests.conftest import ROOT


def _header(path, spec) -> list[str]:
    if spec.type == "excel":
        from python_calamine import CalamineWorkbook

        return CalamineWorkbook.from_path(str(path)).get_sheet_by_name(spec.sheet).to_python()[0]
    if spec.type == "jsonl":
        return list(json.loads(path.read_bytes().split(b"\n")[0]))
    first = path.read_bytes().split(spec.newline.encode())[0].decode("utf-8-sig")
    return first.split(spec.delimiter)


def test_every_feed_file_matches_its_contract(tiny_county):
    contracts = load_contracts()
    assert {f"{f.partner}/{f.id}" for f in contracts.feeds()} == set(FEEDS)
    for feed in contracts.feeds():
        spec = SPECS[f"{feed.partner}/{feed.id}"]
        assert feed.format.type == spec.type
        assert feed.format.file_extension == spec.ext
        if spec.type == "csv":
            assert feed.format.delimiter == spec.delimiter
            assert feed.format.encoding.replace("windows-1252", "cp1252") == spec.encoding
        assert feed.format.sheet == spec.sheet
        assert tuple(feed.record_id_columns) == spec.record_id
        files = sorted((tiny_county / "landing" / feed.partner / feed.id).glob(f"*.{spec.ext}"))
        assert _header(files[0], spec) == [c.name for c in feed.columns], feed.source
        assert spec.bad_date[0] in {c.name for c in feed.columns if c.type in ("date", "datetime")}


def test_police_person_records_carry_a_column_the_agreement_does_not_allow():
    feed = load_contracts().feed("police", "person_records")
    assert feed.dropped_columns == ["notes"]
    nhs = load_contracts().feed("nhs", "ae_attendances").agreement
    assert nhs.national_data_opt_out and nhs.lawful_basis.special_category and nhs.lawful_basis.dpa_2018_condition


def test_data_dictionary_is_generated_from_the_contracts():
    committed = (ROOT / "docs" / "data-dictionary.md").read_text()
    assert committed == render_data_dictionary(), (
        "docs/data-dictionary.md is stale: uv run python -m orchestration.lib.synthetic.dictionary "
        "> docs/data-dictionary.md")


def _digest(home) -> dict[str, str]:
    out = {}
    for path in sorted(home.rglob("*")):
        if path.is_file() and path.suffix != ".json":
            if path.suffix == ".parquet":
                out[str(path.relative_to(home))] = hashlib.sha256(
                    pd.read_parquet(path).to_csv(index=False).encode()).hexdigest()
            else:
                out[str(path.relative_to(home))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def test_same_seed_same_county_different_seed_different_county(tmp_path):
    a = generate_county(tmp_path / "a", scale="tiny", seed=7, months=3)
    b = generate_county(tmp_path / "b", scale="tiny", seed=7, months=3)
    generate_county(tmp_path / "c", scale="tiny", seed=8, months=3)
    assert a.records == b.records
    da, db, dc = _digest(tmp_path / "a"), _digest(tmp_path / "b"), _digest(tmp_path / "c")
    assert da == db
    assert da.keys() & dc.keys() and da != dc


def test_bad_arguments_raise_errors_that_say_how_to_fix(tmp_path):
    with pytest.raises(PlacelinkError, match="unknown scale 'huge'.*fix: use one of tiny"):
        generate_county(tmp_path, scale="huge")
    with pytest.raises(PlacelinkError, match="--start.*YYYY-MM"):
        generate_county(tmp_path, scale="tiny", start="Nov 2024")


def test_cli_generate_writes_into_the_home(tmp_path, monkeypatch):
    from orchestration.cli import app

    home = tmp_path / "home"
    monkeypatch.setenv("PLACELINK_HOME", str(home))
    result = CliRunner().invoke(app, ["generate", "--scale", "tiny", "--seed", "3", "--months", "2",
                                      "--start", "2025-01"])
    assert result.exit_code == 0, result.output
    assert "police/street_crimes" in result.output and "total records" in result.output
    drops = sorted(p.name for p in (home / "landing" / "police" / "street_crimes").iterdir())
    assert drops[0].startswith("2025-02-0") and drops[-1].startswith("2025-03-0")
    config = json.loads((home / "truth" / "config.json").read_text())
    assert (config["scale"], config["seed"], config["months"], config["start"]) == ("tiny", 3, 2, "2025-01")
    bad = CliRunner().invoke(app, ["generate", "--scale", "huge"])
    assert bad.exit_code != 0


def test_ingest_quarantines_exactly_the_malformed_rows_the_truth_lists(tmp_path):
    """Cross-stage check: truth/defects.parquet scores ingest row for row."""
    import duckdb

    from orchestration.lib.config import get_settings
    from orchestration.lib.feeds import ingest

    home = tmp_path / "home"
    generate_county(home, scale="tiny", seed=11, months=3)
    settings = get_settings(home=home).ensure()
    ingest(settings)
    with duckdb.connect(str(settings.identifiable_db), read_only=True) as con:
        q = con.execute("SELECT source_file, line, split_part(reason, ':', 1) AS reason FROM ops.quarantine").df()
    q["file"] = q["source_file"].str.replace(f"{home}/", "", regex=False)
    q = q[q["reason"] != "national_data_opt_out"]
    defects = pd.read_parquet(home / "truth" / "defects.parquet")
    malformed = defects[defects["defect"].isin(["wrong_column_count", "invalid_json", "impossible_date",
                                                "bad_encoding", "implausible_date"])]
    expected = {"impossible_date": "invalid_date"}
    want = set(zip(malformed["file"], malformed["line"], malformed["defect"].replace(expected), strict=True))
    got = set(zip(q["file"], q["line"], q["reason"], strict=True))
    assert want and want == got
