"""Bad input to ``placelink link`` (#23): a clear error or a named warning, never a silent drop of a field.

Files are written at test time; every case goes through the CLI (typer's CliRunner), as a user runs it, and the
error or warning must name the file/line/field without quoting a value from the file.
"""

from __future__ import annotations

import datetime as dt
import warnings

import duckdb
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from orchestration.cli import app
from orchestration.lib.matching.normalise import MissingFieldWarning, _dob_sql, prepare_records, run


def _link(tmp_path, content: bytes, name: str = "people.csv"):
    src = tmp_path / name
    src.write_bytes(content)
    result = CliRunner().invoke(app, ["link", str(src), str(tmp_path / "out.csv")])
    # the CLI's entry point prints a PlacelinkError; under CliRunner it is the result's exception
    result.text = result.output + (str(result.exception) if result.exception else "")
    return result, tmp_path / "out.csv"


def test_missing_record_id_column_is_a_clear_error(tmp_path):
    result, out = _link(tmp_path, b"given_name,family_name\nAda,Lovelace\n")
    assert result.exit_code != 0
    assert "missing required column(s) record_id" in result.text
    assert "Lovelace" not in result.text
    assert not out.exists()


def test_empty_file_is_a_clear_error(tmp_path):
    result, out = _link(tmp_path, b"")
    assert result.exit_code != 0
    assert "the file is empty" in result.text
    assert not out.exists()


def test_header_only_file_gives_an_empty_output(tmp_path):
    result, out = _link(tmp_path, b"record_id,given_name\n")
    assert result.exit_code == 0, result.output
    assert list(pd.read_csv(out).columns) == ["record_id", "person_id"] and len(pd.read_csv(out)) == 0


def test_duplicate_record_ids_are_refused(tmp_path):
    result, out = _link(tmp_path, b"record_id,given_name\nr1,Ada\nr1,Grace\n")
    assert result.exit_code != 0
    assert "appear more than once" in result.text and "column record_id" in result.text
    assert "Grace" not in result.text


def test_non_utf8_text_names_the_line_not_the_value(tmp_path):
    result, out = _link(tmp_path, "record_id,given_name\nr1,Ada\nr2,Ren\xe9e\n".encode("cp1252"))
    assert result.exit_code != 0
    assert "not UTF-8" in result.text and "line 3" in result.text
    assert "Ren" not in result.text
    assert not out.exists()


def test_all_null_and_absent_fields_are_named_and_linking_goes_on(tmp_path):
    rows = "record_id,given_name,family_name,date_of_birth,postcode\n" + "".join(
        f"r{i},Ada,,1990-01-0{i % 3 + 1},AB1 2CD\n" for i in range(6))
    result, out = _link(tmp_path, rows.encode())
    assert result.exit_code == 0, result.output
    for field in ("family_name: every value is empty", "sex: column absent", "address: column absent",
                  "nhs_number: column absent"):
        assert f"warning: {field}" in result.text, result.output
    assert "given_name:" not in result.text  # present and usable: no warning
    assert len(pd.read_csv(out)) == 6


def test_unusable_dates_are_named(tmp_path):
    rows = "record_id,given_name,family_name,date_of_birth\nr1,Ada,King,unknown\nr2,Ada,King,n/k\n"
    result, _ = _link(tmp_path, rows.encode())
    assert result.exit_code == 0, result.output
    assert "warning: date_of_birth: 2 values but none usable" in result.text
    assert "unknown" not in result.text


def test_prepare_records_warns_with_the_field_name():
    con = duckdb.connect()
    con.register("_df", pd.DataFrame({"record_id": ["1", "2"], "given_name": [None, None]}))
    run(con, "CREATE TABLE t AS SELECT * FROM _df")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prepare_records(con, "t", "p")
    names = {str(w.message).split(":")[0] for w in caught if w.category is MissingFieldWarning}
    assert names == {"given_name", "family_name", "date_of_birth", "sex", "postcode", "address", "nhs_number"}


@settings(max_examples=80, deadline=None)
@given(st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2030, 12, 31)),
       st.sampled_from(["%Y-%m-%d", "%Y%m%d", "%d/%m/%Y"]))
def test_dates_of_birth_in_the_accepted_forms_read_alike(day, fmt):
    con = duckdb.connect()
    got = con.execute(f"SELECT {_dob_sql('v')} FROM (SELECT ? AS v)", [day.strftime(fmt)]).fetchall()[0][0]
    assert got == day.isoformat()


@pytest.mark.parametrize("raw", ["1972-95-18", "19729518"])
def test_a_slipped_date_is_kept_for_the_typo_comparison(raw):
    con = duckdb.connect()
    assert con.execute(f"SELECT {_dob_sql('v')} FROM (SELECT ? AS v)", [raw]).fetchall()[0][0] == "1972-95-18"


def test_unknown_and_repeated_columns_are_named_never_silently_dropped(tmp_path):
    result, out = _link(tmp_path, b"record_id,given_name,dob\nr1,Ada,1990-01-01\nr2,Ada,1990-01-01\n")
    assert result.exit_code == 0, result.output
    assert "warning: column(s) dob are not in the standard person record" in result.text
    assert "1990" not in result.text
    result, out = _link(tmp_path, b"record_id,given_name,given_name\nr1,Ada,Grace\n", name="twice.csv")
    assert result.exit_code != 0
    assert "given_name appear more than once in the header" in result.text and "line 1" in result.text
    assert "Grace" not in result.text


def test_unreadable_parquet_is_a_clear_error(tmp_path):
    result, out = _link(tmp_path, b"PAR1 not really parquet Lovelace", name="people.parquet")
    assert result.exit_code != 0
    assert "not a readable Parquet file" in result.text and "Lovelace" not in result.text


# --- placelink link-eval ------------------------------------------------------------------------------------------

def _eval(tmp_path, content: bytes, *args: str):
    src = tmp_path / "labelled.csv"
    src.write_bytes(content)
    result = CliRunner().invoke(app, ["link-eval", str(src), *args])
    result.text = result.output + (str(result.exception) if result.exception else "")
    return result


def test_link_eval_without_the_label_column_names_it(tmp_path):
    result = _eval(tmp_path, b"record_id,given_name,family_name\nr1,Ada,Lovelace\nr2,Ada,Lovelace\n")
    assert result.exit_code != 0
    assert "label column true_person_id is missing" in result.text and "--label-column" in result.text
    assert "Lovelace" not in result.text
    result = _eval(tmp_path, b"record_id,truth,given_name\nr1,p1,Ada\nr2,p1,Ada\n", "--label-column", "person")
    assert result.exit_code != 0 and "label column person is missing" in result.text


def test_link_eval_with_too_few_labels_is_a_clear_error(tmp_path):
    result = _eval(tmp_path, b"record_id,true_person_id,given_name\nr1,,Ada\nr2,p1,Ada\n")
    assert result.exit_code != 0
    assert "fewer than two records carry a label" in result.text

