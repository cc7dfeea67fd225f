"""One postcode rule (orchestration.lib.postcodes): the Python function and the SQL the warehouse sources and
linkage run agree on any input, so a pseudonymised postcode token, the postcode-directory join and linkage's
comparison all see the same postcode."""

from __future__ import annotations

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestration.lib import postcodes
from orchestration.lib.feeds.warehouse_sources import _postcode_sql as sources_sql
from orchestration.lib.matching.normalise import UK_POSTCODE_REGEX
from orchestration.lib.matching.normalise import postcode_sql as linkage_sql
from orchestration.lib.pseudonymise import normalise_postcode as pseudonymise_rule

# postcode-like text with the noise partners send: case, spaces, punctuation, other scripts, ligatures
_chars = st.sampled_from(list("ABDEHJSWXYZabshw0123456789 -.\t'") + ["ß", "ı", "ﬀ", "Ａ", "٣", "é", "\u00a0"])
_postcodeish = st.one_of(
    st.text(_chars, max_size=10),
    st.from_regex(r"\A[A-Za-z]{1,2}[0-9][A-Za-z0-9]? ?[0-9][A-Za-z]{2}\Z"),
    st.text(max_size=8),
)


@pytest.fixture(scope="module")
def con():
    with duckdb.connect() as c:
        yield c


@settings(max_examples=40, deadline=None)
@given(values=st.lists(_postcodeish, min_size=1, max_size=50))
def test_the_sql_of_each_use_is_the_python_rule(con, values):
    # one query per example (a query per value made this test take a minute)
    sources, linkage = con.execute(f"SELECT list_transform($v, lambda x: {sources_sql('x')}), "
                                   f"list_transform($v, lambda x: {linkage_sql('x')})", {"v": values}).fetchone()
    assert sources == [pseudonymise_rule(v) for v in values] == [postcodes.normalise_postcode(v) for v in values]
    assert linkage == [postcodes.normalise_postcode(v, keep_other=True) for v in values]


def test_the_rule_on_known_cases(con):
    cases = {" sh12ab ": "SH1 2AB", "SH1  2AB": "SH1 2AB", "ec1a-1bb": "EC1A 1BB", "w1a0ax": "W1A 0AX",
             "not a postcode": None, "": None, "ﬀ1 1AA": None}
    for raw, want in cases.items():
        assert postcodes.normalise_postcode(raw) == want, raw
        assert con.execute(f"SELECT {sources_sql('$v')}", {"v": raw}).fetchone()[0] == want, raw
    assert postcodes.normalise_postcode("75008", keep_other=True) == "75008"  # a foreign code is kept for linkage
    assert con.execute(f"SELECT {linkage_sql('NULL')}").fetchone()[0] is None
    assert con.execute(f"SELECT regexp_matches('SH1 2AB', '{UK_POSTCODE_REGEX}')").fetchone()[0]
