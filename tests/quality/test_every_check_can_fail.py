"""No check that cannot fail: for every expectation of every suite, a targeted change to real rows (the
ingested small county for feeds, the dbt fixture warehouse for marts) makes exactly that expectation fail."""

import dataclasses

import duckdb
import pandas as pd
import pytest

from expectations.runner import validate_dataframe
from expectations.suite import ExpectationSpec, SuiteSpec, load_suites

pytestmark = pytest.mark.slow
TODAY = pd.Timestamp("2027-01-01")


def _break(df: pd.DataFrame, exp: ExpectationSpec, spec: SuiteSpec) -> tuple[pd.DataFrame, dict]:
    """A copy of ``df`` that violates ``exp`` on every row, and the suite parameters to validate with."""
    df = df.copy()
    kw, col, params = exp.kwargs, exp.column, {"today": TODAY}
    kind = exp.expect
    if kind == "expect_table_row_count_to_be_between":
        if isinstance(kw.get("min_value"), dict):  # the volume rule
            params.update(volume_min=10 * len(df), volume_max=20 * len(df))
            return df, params
        return df.iloc[0:0], params
    if kind == "expect_column_to_exist":
        return df.drop(columns=[col]), params
    if kind == "expect_column_values_to_be_in_type_list":
        numeric = pd.api.types.is_numeric_dtype(df[col]) or pd.api.types.is_datetime64_any_dtype(df[col])
        df[col] = pd.Series(["x"] * len(df), dtype=object) if numeric else 1
        return df, params
    if kind in ("expect_compound_columns_to_be_unique",) or col == "_duplicate_of_earlier":
        return pd.concat([df, df], ignore_index=True), params
    if col == "_nhs_number_valid":
        df["nhs_number"] = "943 476 5918"
        return df, params
    if kind == "expect_table_columns_to_match_set":
        return df.assign(nhs_number="943 476 5919"), params
    if kind == "expect_column_values_to_not_be_null":
        df[col] = None
        return df, params
    if kind == "expect_column_values_to_be_null":  # with a row condition {column, equals}
        cond = kw["row_condition"]
        df[cond["column"]] = cond["equals"]
        df[col] = 3
        return df, params
    if kind == "expect_column_values_to_match_regex":
        df[col] = "!!"
        return df, params
    if kind == "expect_column_values_to_not_match_regex":
        df[col] = "SH1 2AB"
        return df, params
    if kind == "expect_column_values_to_be_in_set":
        df[col] = "!!" if not pd.api.types.is_numeric_dtype(df[col]) else -999
        return df, params
    if kind == "expect_column_values_to_not_be_in_set":
        df[col] = kw["value_set"][0]
        return df, params
    if kind == "expect_column_sum_to_be_between":
        df[col] = 0
        return df, params
    if kind == "expect_column_values_to_be_between":
        if pd.api.types.is_datetime64_any_dtype(df[col]):
            df[col] = pd.Timestamp("2999-01-01") if kw.get("max_value") else pd.Timestamp("1800-01-01")
        elif kw.get("min_value") is not None:
            df[col] = kw["min_value"] - 1
        else:
            df[col] = kw["max_value"] + 1
        return df, params
    if kind == "expect_column_pair_values_a_to_be_greater_than_b":
        a, b = kw["column_A"], kw["column_B"]
        if pd.api.types.is_datetime64_any_dtype(df[b]):
            df[b] = pd.Timestamp("2000-06-01")
            df[a] = pd.Timestamp("2000-01-01")
        else:
            df[b] = 10
            df[a] = 5
        return df, params
    raise AssertionError(f"no breaking recipe for {kind}: add one so this check is proven able to fail")


@pytest.fixture(scope="module")
def samples(ingested_county, dbt_warehouse):
    out = {}
    for spec in load_suites():
        db = (ingested_county / "identifiable.duckdb" if spec.database == "identifiable"
              else dbt_warehouse / "warehouse.duckdb")
        with duckdb.connect(str(db), read_only=True) as con:
            out[spec.name] = con.execute(f"SELECT * FROM {spec.table} LIMIT 30").df()
    return out


@pytest.mark.parametrize("spec", load_suites(), ids=lambda s: s.name)
def test_every_expectation_can_fail(spec, samples):
    df = samples[spec.name]
    assert len(df) > 0
    never_failed = []
    for i, exp in enumerate(spec.all_expectations):
        broken, params = _break(df, exp, spec)
        # validate this one expectation (structure generated from columns is left out unless it is the target)
        single = dataclasses.replace(spec, columns={}, volume=None, expectations=(exp,))
        result = validate_dataframe(broken, single, params=params)
        target = result.outcomes[-1]
        if target.success:
            never_failed.append((i, exp.expect, exp.column, target.error))
        assert target.severity == exp.severity
    assert not never_failed, f"{spec.name}: these expectations did not fail when violated: {never_failed}"
