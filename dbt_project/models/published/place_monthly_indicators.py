"""Disclosure-controlled place indicators: every geography x month x indicator cell, safe to publish.

A dbt Python model so the published table is exactly what orchestration.lib.disclosure emits: primary suppression
(counts 1..threshold-1, the SQL macro is_primary_suppressed, unit-tested) plus secondary suppression over the
margin equations (LSOA -> ward / MSOA / district -> county), which needs linear algebra rather than SQL.
"""


def model(dbt, session):
    dbt.config(materialized="table")
    from orchestration.lib.disclosure import protect_place_table

    threshold = int(dbt.config.get("disclosure_threshold") or 5)
    cells = dbt.ref("place_indicator_cells").df()
    hierarchy = dbt.ref("dim_lsoa").df()[["lsoa_code", "ward_code", "msoa_code", "district_code"]]
    published = protect_place_table(cells, hierarchy, threshold=threshold)
    published["month"] = published["month"].astype("datetime64[us]").dt.date
    return published
