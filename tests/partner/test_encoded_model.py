"""The encoded person model is derived from the clear one: every clear comparison level and blocking rule has an
encoded counterpart decision, so a field or level added to the clear model cannot be silently missing from the
encoded path."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest
import splink.comparison_level_library as cll
import splink.comparison_library as cl

from orchestration.lib.matching import encoded_model as em
from orchestration.lib.matching import person as pm
from orchestration.lib.matching.encoding import ENCODED_COLUMNS, Encoder, encode_person_records
from orchestration.lib.matching.normalise import MODEL_FIELDS
from tests.partner.conftest import SECRET


def _names(settings) -> list[str]:
    return [c.get_comparison("duckdb").output_column_name for c in settings.comparisons]


def _levels(comparison) -> list:
    return comparison.create_comparison_levels()


def test_every_clear_comparison_and_tf_choice_has_its_encoded_counterpart():
    clear, encoded = pm.model_settings(), em.model_settings()
    assert _names(encoded) == _names(clear)
    for c_clear, c_enc in zip(clear.comparisons, encoded.comparisons, strict=True):
        name = c_clear.get_comparison("duckdb").output_column_name
        kept = [lvl for lvl in _levels(c_clear) if em.encoded_level(name, lvl) is not None]
        assert len(_levels(c_enc)) == len(kept), name
        # the term-frequency choices are the clear model's, on the same (token) columns
        tf = [getattr(lvl, "tf_adjustment_column", None) for lvl in _levels(c_clear)]
        tf_enc = [getattr(lvl, "tf_adjustment_column", None) for lvl in _levels(c_enc)]
        assert [t for t in tf if t] == [t for t in tf_enc if t], name
    # issue #23's additions follow: the national identifier and the address (TF on the house number + street)
    assert {"national_id", "address"} <= set(_names(encoded))
    tf_cols = {getattr(lvl, "tf_adjustment_column", None) for c in encoded.comparisons for lvl in _levels(c)}
    assert {"given_name", "family_name", "addr_key"} <= tf_cols
    # every field the clear model compares travels in the encoded record
    assert {col for col in MODEL_FIELDS.values()} - {"addr_words", "nhs_digits"} <= set(ENCODED_COLUMNS)
    assert {"addr_words", "nhs_digits", "addr_key", "family_parts"} <= set(ENCODED_COLUMNS)


def test_a_clear_level_without_an_encoded_decision_fails_loudly(monkeypatch):
    """The drift guard: a new clear level nobody mapped stops the encoded model from being built."""
    original = pm.model_settings

    def with_new_level():
        s = original()
        s.comparisons.append(cl.CustomComparison(output_column_name="phone", comparison_levels=[
            cll.NullLevel("phone"),
            cll.CustomLevel("right(phone_l, 6) = right(phone_r, 6)", label_for_charts="Last six digits"),
            cll.ElseLevel()]))
        return s

    monkeypatch.setattr(pm, "model_settings", with_new_level)
    with pytest.raises(KeyError, match="phone.*Last six digits"):
        em.model_settings()


def test_a_new_clear_exact_level_or_blocking_rule_on_a_field_not_encoded_fails(monkeypatch):
    from splink import block_on

    original = pm.model_settings

    def exact_on_phone():
        s = original()
        s.comparisons.append(cl.ExactMatch("phone"))
        return s

    monkeypatch.setattr(pm, "model_settings", exact_on_phone)
    with pytest.raises(KeyError, match="phone"):
        em.model_settings()

    def block_on_phone():
        s = original()
        s.blocking_rules_to_generate_predictions.append(block_on("phone"))
        return s

    monkeypatch.setattr(pm, "model_settings", block_on_phone)
    with pytest.raises(KeyError, match="phone"):
        em.model_settings()


def test_a_level_marked_same_must_only_compare_tokens():
    level = cll.CustomLevel("substr(given_name_l, 1, 1) = substr(given_name_r, 1, 1)",
                            label_for_charts="House number and one address word agree")
    with pytest.raises(ValueError, match="SAME"):
        em.encoded_level("address", level)


def test_every_encoded_level_and_blocking_rule_runs_on_encoded_records():
    """The derived SQL is valid on the encoded prepared table (Splink would only fail at prediction time)."""
    records = pd.DataFrame({
        "record_id": ["a", "b"], "source": ["s", "s"], "given_name": ["Jon", "John"],
        "family_name": ["Smith-Jones", "Smith"], "date_of_birth": ["1980-02-03", "1980-03-02"], "sex": ["M", "M"],
        "postcode": ["SH1 2SA", "SH1 2SB"], "address": ["12 High Street", "12 High St"],
        "nhs_number": ["9434765919", "9434765919"], "uprn": [None, None], "national_id": ["QQ123456C", None]})
    encoded = encode_person_records(records, Encoder(SECRET))
    con = duckdb.connect()
    con.register("_enc_df", encoded)
    con.execute("CREATE TABLE _enc AS SELECT * FROM _enc_df")
    em.prepare_encoded(con, "_enc", "_p")
    settings = em.model_settings()
    for comparison in settings.comparisons:
        for level in _levels(comparison):
            sql = level.get_comparison_level("duckdb").sql_condition
            if sql == "ELSE":
                continue
            got = con.execute(f"""SELECT ({sql}) FROM (SELECT {', '.join(
                f'l.{c} AS {c}_l, r.{c} AS {c}_r' for c in _cols(con))} FROM _p l, _p r
                WHERE l.unique_id = 'a' AND r.unique_id = 'b')""").fetchall()
            assert len(got) == 1
    for rule in settings.blocking_rules_to_generate_predictions:
        sql = rule.get_blocking_rule("duckdb").blocking_rule_sql
        con.execute(f"SELECT count(*) FROM _p l JOIN _p r ON {sql}").fetchall()
    # Smith-Jones ~ Smith by the family-part tokens; the nickname/canonical tokens intersect for Jon ~ John
    row = con.execute("""SELECT len(list_intersect(l.family_parts, r.family_parts)),
                                len(list_intersect(l.addr_numbers, r.addr_numbers)),
                                l.nhs_digits = r.nhs_digits, l.dob_swapped = r.dob
                         FROM _p l, _p r WHERE l.unique_id = 'a' AND r.unique_id = 'b'""").fetchall()[0]
    assert row == (1, 1, True, True)


def test_compact_tokens_give_every_level_and_term_frequency_join_the_same_result():
    """A full encoded link scores on tokens as 128-bit integers (encoded_model.compact_columns: fixed-width, no heap
    string): every level of the model and the term-frequency join must agree on them exactly as on the hex text."""
    records = pd.DataFrame({
        "record_id": ["a", "b", "c"], "source": ["s"] * 3, "given_name": ["Jon", "John", "Ann"],
        "family_name": ["Smith-Jones", "Smith", "Jones"], "date_of_birth": ["1980-02-03", "1980-03-02", "1980-02-03"],
        "sex": ["M", "M", "F"], "postcode": ["SH1 2SA", "SH1 2SB", "SH1 2SA"],
        "address": ["12 High Street", "12 High St", "3 Mill Lane"],
        "nhs_number": ["9434765919", "9434765919", None], "uprn": [None, None, "100"],
        "national_id": ["QQ123456C", None, None]})
    con = duckdb.connect()
    con.register("_enc_df", encode_person_records(records, Encoder(SECRET)))
    con.execute("CREATE TABLE _enc AS SELECT * FROM _enc_df")
    em.prepare_encoded(con, "_enc", "_p")
    con.execute(f"CREATE TABLE _c AS SELECT {em.compact_columns(con, '_p')} FROM _p")
    types = dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE _c)").fetchall())
    assert types["given_name"] == "UHUGEINT" and types["addr_words"] == "UHUGEINT[]"
    assert types["given_name_bf"] == "BIT" and types["unique_id"] == "VARCHAR"

    def levels(table: str) -> list:
        cols = ", ".join(f"l.{c} AS {c}_l, r.{c} AS {c}_r" for c in _cols(con))
        out = []
        for comparison in em.model_settings().comparisons:
            for level in _levels(comparison):
                sql = level.get_comparison_level("duckdb").sql_condition
                if sql != "ELSE":
                    out += con.execute(f"SELECT l_id, r_id, ({sql}) FROM (SELECT l.unique_id AS l_id, "
                                       f"r.unique_id AS r_id, {cols} FROM {table} l, {table} r) ORDER BY 1, 2").fetchall()
        return out

    assert levels("_c") == levels("_p")
    tf = "SELECT a.unique_id, count(*) FROM {t} a JOIN {t} b ON a.given_name = b.given_name GROUP BY 1 ORDER BY 1"
    assert con.execute(tf.format(t="_c")).fetchall() == con.execute(tf.format(t="_p")).fetchall()


def _cols(con) -> list[str]:
    return [r[0] for r in con.execute("DESCRIBE _p").fetchall()]


def test_the_encoded_prepared_record_has_every_column_the_stable_index_reads():
    """The index collapses exact duplicates on DUPLICATE_KEY and registers term frequencies for the model's TF
    columns: the encoded record must carry them all (after #23 it lacked nhs_digits, national_id and the address
    columns, and every encoded link failed with a binder error)."""
    from orchestration.lib.matching.index import DUPLICATE_KEY

    records = pd.DataFrame({"record_id": ["a"], "source": ["s"], "given_name": ["Ann"], "family_name": ["Lee"],
                            "date_of_birth": ["1990-01-02"], "address": ["3 Mill Lane"], "postcode": ["SH1 2SA"]})
    con = duckdb.connect()
    con.register("_enc_df", encode_person_records(records, Encoder(SECRET)))
    con.execute("CREATE TABLE _enc AS SELECT * FROM _enc_df")
    em.prepare_encoded(con, "_enc", "_p")
    cols = set(_cols(con))
    tf = {getattr(lvl, "tf_adjustment_column", None) for c in pm.model_settings().comparisons for lvl in _levels(c)}
    assert set(DUPLICATE_KEY) | (tf - {None}) | {"unique_id", "source", "weak_identifiers"} <= cols


def test_a_saved_encoded_model_from_before_a_model_change_is_not_reused():
    """A model saved before the comparisons changed (the pre-#23 encoded model compared postcode_area, which the
    encoded record no longer has) is retrained rather than failing at prediction."""
    current = em.model_settings().create_settings_dict(sql_dialect_str="duckdb")
    assert em.model_is_current(current)
    old = {**current, "comparisons": [dict(c) for c in current["comparisons"]]}
    postcode = next(c for c in old["comparisons"] if c["output_column_name"] == "postcode")
    postcode["comparison_levels"] = [*postcode["comparison_levels"][:-1],
                                     {"sql_condition": "postcode_area_l = postcode_area_r"},
                                     postcode["comparison_levels"][-1]]
    assert not em.model_is_current(old)
    assert not em.model_is_current({"comparisons": [{"no": "shape"}]})
