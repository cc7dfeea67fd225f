"""Disclosure-controlled place indicators: every geography x month x indicator cell, safe to publish.

A dbt Python model so the published table is exactly what orchestration.lib.disclosure emits: primary suppression
(counts 1..threshold-1, the SQL macro is_primary_suppressed, unit-tested) plus secondary suppression over the
margin equations (LSOA -> ward / MSOA / district -> county, and each parent indicator = the sum of its children, from
the seed `indicators` column `parent`: crime types -> crimes_total), which needs linear algebra rather than SQL.
"""


def model(dbt, session):
    dbt.config(materialized="table")
    from orchestration.lib.disclosure import protect_place_table

    # a bare call: dbt's parser only finds dbt.config.get(...) as a statement's call or a call's argument, so
    # inside int(... or 5) the key was never passed and the var disclosure_threshold was silently ignored
    configured_threshold = dbt.config.get("disclosure_threshold")
    threshold = int(configured_threshold or 5)
    cells = _frame(dbt.ref("place_indicator_cells"))
    hierarchy = _frame(dbt.ref("dim_lsoa"))[["lsoa_code", "ward_code", "msoa_code", "district_code"]]
    # the indicator hierarchy, stated once in the seed: linked indicators are protected as one table per month
    indicators = _frame(dbt.ref("indicators"))[["indicator", "parent"]]
    # The nightly refresh passes var published_months (the months its new rows fall in): every month's tables
    # are protected on their own, so only those months are protected again and the rest is kept as published.
    # (a call on its own: dbt passes a config key to a Python model only when it parses a bare dbt.config.get(...))
    published_months = dbt.config.get("published_months")
    months = sorted({m.strip() for m in str(published_months or "").split(",") if m.strip()})
    kept = _published_except(session, dbt.this, months) if months else None
    if kept is not None:
        cells = cells[cells["month"].astype("datetime64[us]").dt.strftime("%Y-%m-%d").isin(months)]
    published = protect_place_table(cells, hierarchy, threshold=threshold, indicators=indicators)
    published["month"] = published["month"].astype("datetime64[us]").dt.date
    if kept is not None:
        import pandas as pd

        kept["month"] = kept["month"].astype("datetime64[us]").dt.date
        for col in ("event_count", "population"):
            kept[col] = kept[col].astype("Int64")
        published = pd.concat([kept[published.columns], published], ignore_index=True).sort_values(
            ["month", "indicator", "geography_level", "area_code"]).reset_index(drop=True)
    return _table(session, published)


def _frame(relation):
    """A ref as pandas: DuckDB's relation (``.df()``) or, on the Spark profile, Spark's DataFrame (``.toPandas()``)."""
    return relation.toPandas() if hasattr(relation, "toPandas") else relation.df()


def _table(session, frame):
    """What the model returns: the pandas frame on DuckDB; on the Spark profile a Spark DataFrame made through Arrow,
    which keeps a nullable integer an integer and a missing value null (dbt-spark's own pandas conversion wrote
    suppressed counts as NaN doubles)."""
    if not hasattr(session, "createDataFrame"):
        return frame
    import pyarrow as pa

    return session.createDataFrame(pa.Table.from_pandas(frame, preserve_index=False))


def _published_except(session, this, months):
    """The published rows of every month but ``months``, or None when there is no published table yet."""
    try:
        return session.sql(
            f"select * from {this} where strftime(cast(month as date), '%Y-%m-%d') not in "
            f"({', '.join(repr(m) for m in months)})").df()
    except Exception:  # noqa: BLE001 - first build (no table yet): protect every month
        return None
