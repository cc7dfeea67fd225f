"""Address matching: free-text address + postcode -> UPRN (gazetteer) -> LSOA (postcode directory).

Why our own DuckDB model rather than ``uk-address-matcher``: that package pins duckdb<2 and splink<5 so it
cannot live in our lock (measured in ``benchmarks/address_matcher_comparison.py``, see docs/matching.md).
This model is candidate generation + scoring in DuckDB SQL; the string similarity is DuckDB's built-in
Jaro-Winkler, not a hand-written fuzzy matcher:

1. normalise: upper case, punctuation out, common abbreviations expanded (RD -> ROAD, APT -> FLAT ...), the
   postcode stripped from the text;
2. candidates: gazetteer addresses in the record's postcode; when the postcode is missing or unknown, the
   addresses whose street's first word and house number or name both appear in the text;
3. score: every gazetteer token (flat, number, house name, street words) is looked up in the record's tokens
   (numbers exactly, words by best Jaro-Winkler) and every record word in the candidate's tokens; a penalty
   when the record has a number the candidate lacks (a different flat); small bonuses when the numbers come
   in the same order (flat 2 of no. 1, not flat 1 of no. 2) and when the postcode (or else the town) agrees;
4. decide: best score >= ``FUZZY_MIN`` and clear of the runner-up -> UPRN (``exact`` when every token is equal
   and the postcode agrees, else ``fuzzy``); otherwise ``postcode_only`` (LSOA from the postcode directory) or
   ``none``. A UPRN supplied by the feed and present in the gazetteer is taken as ``exact``.
"""

from __future__ import annotations

import duckdb

from orchestration.lib.matching.normalise import postcode_sql, run

FUZZY_MIN = 0.8
#: Best candidate must beat the runner-up by this much, or the address is ambiguous.
MARGIN = 0.02

# Abbreviation expansions applied to whole words (address text and gazetteer alike).
ABBREVIATIONS = {
    "RD": "ROAD", "ST": "STREET", "STR": "STREET", "LN": "LANE", "AVE": "AVENUE", "AV": "AVENUE",
    "CL": "CLOSE", "DR": "DRIVE", "CRES": "CRESCENT", "CRS": "CRESCENT", "GDNS": "GARDENS", "PL": "PLACE",
    "SQ": "SQUARE", "CT": "COURT", "TER": "TERRACE", "TERR": "TERRACE", "GRN": "GREEN", "PK": "PARK",
    "APARTMENT": "FLAT", "APT": "FLAT", "FLT": "FLAT", "HSE": "HOUSE", "WY": "WAY", "GRV": "GROVE",
}
STOPWORDS = ("FLAT", "THE", "AND", "OF")


def _normalise_text_sql(expr: str) -> str:
    text = f"' ' || regexp_replace(upper(coalesce(CAST({expr} AS VARCHAR), '')), '[^A-Z0-9]+', ' ', 'g') || ' '"
    # number/letter splits: "12A" stays, "FLAT12" -> "FLAT 12"
    text = f"regexp_replace({text}, '([A-Z]{{2,}})([0-9])', '\\1 \\2', 'g')"
    expanded = "t"
    for short, long in ABBREVIATIONS.items():
        expanded = f"replace({expanded}, ' {short} ', ' {long} ')"
    # The 24 replacements run only on text that holds an abbreviation (one regex test instead of 24 scans
    # of every address); the one-element list binds the text once for the test and the replacements.
    any_short = "|".join(ABBREVIATIONS)
    return (f"trim(regexp_replace(list_transform([{text}], lambda t: CASE WHEN regexp_matches(t, ' ({any_short}) ') "
            f"THEN {expanded} ELSE t END)[1], ' +', ' ', 'g'))")


def _tokens_sql(expr: str) -> str:
    stop = ", ".join(f"'{w}'" for w in STOPWORDS)
    return f"list_filter(string_split({expr}, ' '), lambda t: t <> '' AND t NOT IN ({stop}))"


def prepare_gazetteer(con: duckdb.DuckDBPyConnection, gazetteer: str, out_table: str = "_gaz") -> str:
    """The gazetteer normalised and tokenised for matching (no personal data): ``uprn, postcode, lsoa_code,
    tokens, street_key, place_tokens, paon_key``. A caller may keep it between runs while the gazetteer is
    unchanged and pass it to :func:`match_addresses` (the nightly run matches a few hundred records against
    a county gazetteer it would otherwise re-normalise every night)."""
    run(con, f"""
        CREATE OR REPLACE TABLE {out_table} AS
        SELECT CAST(uprn AS VARCHAR) AS uprn, {postcode_sql('postcode')} AS postcode, lsoa_code,
               {_tokens_sql(_normalise_text_sql("concat_ws(' ', saon, paon, street)"))} AS tokens,
               split_part({_normalise_text_sql('street')}, ' ', 1) AS street_key,
               {_tokens_sql(_normalise_text_sql("concat_ws(' ', locality, town)"))} AS place_tokens,
               {_tokens_sql(_normalise_text_sql('paon'))}[1] AS paon_key
        FROM {gazetteer}
    """)
    return out_table


def match_addresses(con: duckdb.DuckDBPyConnection, records: str, gazetteer: str, postcodes: str,
                    out_table: str = "address_matches", prepared_gazetteer: str | None = None) -> str:
    """Match every record of ``records`` (``record_id, address, postcode[, uprn]``) and write ``out_table``:
    ``record_id, uprn, lsoa_code, match_score, match_method``. Returns ``out_table``.

    ``prepared_gazetteer``: a table made by :func:`prepare_gazetteer` from this gazetteer (else made here)."""
    cols = {r[0] for r in con.execute(f"DESCRIBE {records}").fetchall()}
    addr = "address" if "address" in cols else "NULL"
    given_uprn = "CAST(uprn AS VARCHAR)" if "uprn" in cols else "NULL"
    if prepared_gazetteer:
        run(con, f"CREATE OR REPLACE TEMP VIEW _gaz AS SELECT * FROM {prepared_gazetteer}")
    else:
        prepare_gazetteer(con, gazetteer, "temp._gaz")
    run(con, f"""
        CREATE OR REPLACE TEMP TABLE _pc AS
        SELECT {postcode_sql('postcode')} AS postcode, any_value(lsoa_code) AS lsoa_code
        FROM {postcodes} GROUP BY 1
    """)
    # the address text is normalised only where there is one (most person records carry a postcode alone)
    run(con, f"""
        CREATE OR REPLACE TEMP TABLE _rec AS
        WITH r AS (
            SELECT CAST(record_id AS VARCHAR) AS record_id, {postcode_sql('postcode')} AS postcode,
                   CASE WHEN nullif(trim(CAST({addr} AS VARCHAR)), '') IS NOT NULL
                        THEN {_normalise_text_sql(addr)} ELSE '' END AS text,
                   nullif(trim({given_uprn}), '') AS given_uprn
            FROM {records}
        )
        SELECT record_id, r.postcode, given_uprn,
               -- drop the postcode if it was typed into the address text
               CASE WHEN text = '' THEN []::VARCHAR[] ELSE
               {_tokens_sql("trim(replace(' ' || text || ' ', ' ' || coalesce(replace(r.postcode, ' ', ' '), '#') || ' ', ' '))")}
               END AS tokens,
               pc.lsoa_code AS pc_lsoa
        FROM r LEFT JOIN _pc pc ON pc.postcode = r.postcode
    """)
    # Each distinct (postcode, tokens) is scored once: a person known to several services gives the same
    # address to each (county: 233 k records with an address, 170 k distinct).
    run(con, """
        CREATE OR REPLACE TEMP TABLE _addr AS
        SELECT row_number() OVER () AS addr_id, postcode, tokens, pc_lsoa,
               list_filter(tokens, lambda t: NOT (left(t, 1) BETWEEN '0' AND '9')) AS r_words,
               list_filter(tokens, lambda t: left(t, 1) BETWEEN '0' AND '9') AS r_nums
        FROM (SELECT DISTINCT postcode, tokens, pc_lsoa FROM _rec WHERE len(tokens) > 0)
    """)
    run(con, """
        CREATE OR REPLACE TEMP TABLE _cand AS
        SELECT a.addr_id, g.uprn, TRUE AS same_pc FROM _addr a JOIN _gaz g ON g.postcode = a.postcode
        UNION ALL
        -- without a known postcode: same street and same house number or name (one equi-join on both keys
        -- over the record's token pairs: far cheaper than filtering every address in the street)
        SELECT DISTINCT a.addr_id, g.uprn, FALSE
        FROM _addr a, unnest(a.tokens) AS s(street_tok), unnest(a.tokens) AS h(house_tok)
        JOIN _gaz g ON g.street_key = s.street_tok AND g.paon_key = h.house_tok
        WHERE a.pc_lsoa IS NULL
    """)
    # Jaro-Winkler only where a token has no exact twin on the other side: most candidates share the street
    # words exactly, so this skips most of the string comparisons (same scores, county 3x faster).
    run(con, """
        CREATE OR REPLACE TEMP TABLE _scored AS
        WITH s AS (
            SELECT addr_id, uprn, g.lsoa_code, same_pc,
                len(place_tokens) > 0 AND len(list_intersect(place_tokens, r_tokens)) = len(place_tokens) AS same_town,
                list_avg(list_transform(g_tokens, lambda gt:
                    CASE WHEN left(gt, 1) BETWEEN '0' AND '9' THEN CAST(list_contains(r_nums, gt) AS DOUBLE)
                         WHEN list_contains(r_words, gt) THEN 1.0
                         ELSE coalesce(list_max(list_transform(r_words,
                                  lambda rt: jaro_winkler_similarity(gt, rt))), 0.0) END)) AS token_score,
                -- record words the candidate (or its locality/town) does not explain: "ROSE COTTAGE" vs "THE COTTAGE"
                coalesce(list_avg(list_transform(r_words, lambda rt:
                    CASE WHEN list_contains(g_tokens, rt) OR list_contains(place_tokens, rt) THEN 1.0
                         WHEN list_max(list_transform(list_concat(g_tokens, place_tokens),
                                  lambda gt: jaro_winkler_similarity(gt, rt))) >= 0.9 THEN 1.0 ELSE 0.0 END)), 1.0)
                    AS record_coverage,
                len(list_filter(r_nums, lambda rt: NOT list_contains(g_tokens, rt))) AS extra_numbers,
                -- "Flat 2, 1 Manor Road" vs "Flat 1, 2 Manor Road": numbers in the same order
                r_nums = list_filter(g_tokens, lambda gt: left(gt, 1) BETWEEN '0' AND '9') AS numbers_in_order
            FROM (SELECT c.addr_id, c.uprn, c.same_pc, a.tokens AS r_tokens, a.r_words, a.r_nums,
                         g.tokens AS g_tokens, g.place_tokens, g.lsoa_code
                  FROM _cand c JOIN _addr a USING (addr_id) JOIN _gaz g USING (uprn)) g
        )
        SELECT *,
            0.93 * greatest(0.0, 0.75 * token_score + 0.25 * record_coverage - 0.25 * extra_numbers)
            + CASE WHEN same_pc THEN 0.05 ELSE 0 END + CASE WHEN numbers_in_order THEN 0.02 ELSE 0 END
            + CASE WHEN same_town AND NOT same_pc THEN 0.03 ELSE 0 END AS score
        FROM s
    """)
    accepted = f"b.score >= {FUZZY_MIN} AND b.score - coalesce(b.runner_up, 0) >= {MARGIN}"
    run(con, f"""
        CREATE OR REPLACE TABLE {out_table} AS
        WITH ranked AS (
            SELECT addr_id, uprn, lsoa_code, score,
                   row_number() OVER (PARTITION BY addr_id ORDER BY score DESC, uprn) AS rk,
                   lead(score) OVER (PARTITION BY addr_id ORDER BY score DESC, uprn) AS runner_up
            FROM _scored
        ), best AS (SELECT a.postcode, a.tokens, ranked.* FROM ranked JOIN _addr a USING (addr_id) WHERE rk = 1)
        SELECT r.record_id,
            CASE WHEN gu.uprn IS NOT NULL THEN gu.uprn WHEN {accepted} THEN b.uprn END AS uprn,
            CASE WHEN gu.uprn IS NOT NULL THEN gu.lsoa_code WHEN {accepted} THEN b.lsoa_code
                 ELSE r.pc_lsoa END AS lsoa_code,
            round(CASE WHEN gu.uprn IS NOT NULL THEN 1.0 WHEN {accepted} THEN b.score
                 WHEN r.pc_lsoa IS NOT NULL THEN 0.0 ELSE NULL END, 4) AS match_score,
            CASE WHEN gu.uprn IS NOT NULL THEN 'exact'
                 WHEN {accepted} THEN CASE WHEN b.score >= 0.9999 THEN 'exact' ELSE 'fuzzy' END
                 WHEN r.pc_lsoa IS NOT NULL THEN 'postcode_only'
                 ELSE 'none' END AS match_method
        FROM _rec r
        LEFT JOIN best b ON b.postcode IS NOT DISTINCT FROM r.postcode AND b.tokens = r.tokens
        LEFT JOIN _gaz gu ON gu.uprn = r.given_uprn
    """)
    run(con, "DROP VIEW IF EXISTS _gaz" if prepared_gazetteer else "DROP TABLE IF EXISTS _gaz")
    for t in ("_pc", "_rec", "_addr", "_cand", "_scored"):
        run(con, f"DROP TABLE IF EXISTS {t}")
    return out_table
