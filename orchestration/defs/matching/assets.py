"""Matching assets: ``link/address_matches``, ``link/person_index``, ``link/household_index``.

One multi-asset, because one run of :func:`orchestration.lib.matching.run.run_matching` writes all three
tables in one transaction-sized step (address matches feed the person model's UPRN comparison, and the
household index is derived from the person index). It depends on every ``raw/<partner>__<feed>`` asset,
whose loads write ``link.person_records``; the metrics of each run (pairwise precision/recall/F1 when truth
is present, counts by match method, address match rate) become asset metadata.
"""



import dagster as dg
from dagster_duckdb import DuckDBResource

from orchestration.defs.guard import no_leaks
from orchestration.defs.ops.policies import as_failure
from orchestration.defs.resources import IDENTIFIABLE_POOL, PlacelinkSettings
from orchestration.lib.contracts import Contracts
from orchestration.lib.errors import PlacelinkError
from orchestration.lib.governance.erasure import EXCLUSIONS_METADATA, EXCLUSIONS_TAG

ADDRESS_MATCHES = dg.AssetKey(["link", "address_matches"])
PERSON_INDEX = dg.AssetKey(["link", "person_index"])
HOUSEHOLD_INDEX = dg.AssetKey(["link", "household_index"])
GROUP = "matching"
OWNERS = ["team:matching"]


class MatchingConfig(dg.Config):
    full: bool = False
    """Re-link every record from scratch (``placelink refresh --full``, ``placelink match --full``); nightly runs
    link only the new records into the stable index."""
    retrain: bool = False
    """Train a new linkage model version with EM first (``placelink match --retrain``)."""


def raw_feed_keys(contracts: Contracts) -> list[dg.AssetKey]:
    """``raw/<partner>__<feed>`` of every feed that carries people (only those write person records)."""
    return [dg.AssetKey(["raw", f.name]) for c in contracts for f in c.feeds if f.person is not None]


def _metadata(out: dict, keys: tuple[str, ...]) -> dict:
    meta: dict = {}
    for k, v in out.items():
        if any(k.startswith(p) for p in keys) and isinstance(v, int | float) and not isinstance(v, bool):
            meta[k] = dg.MetadataValue.float(float(v)) if isinstance(v, float) else dg.MetadataValue.int(v)
    return meta


def build_matching_asset(contracts: Contracts) -> dg.AssetsDefinition:
    deps = raw_feed_keys(contracts)

    @dg.multi_asset(
        specs=[
            dg.AssetSpec(ADDRESS_MATCHES, group_name=GROUP, owners=OWNERS, deps=deps, kinds={"duckdb"},
                         tags={"zone": "identifiable", EXCLUSIONS_TAG: "true"},
                         description="Every person record's address and postcode matched to a UPRN (gazetteer) "
                                     "and an LSOA (postcode directory), with a score and method "
                                     "(exact | fuzzy | postcode_only | none). Table link.address_matches."),
            dg.AssetSpec(PERSON_INDEX, group_name=GROUP, owners=OWNERS, deps=[ADDRESS_MATCHES],
                         kinds={"duckdb", "splink"},
                         tags={"zone": "identifiable"},
                         description="record_id -> person_id, stable across nights: Splink (DuckDB) linkage, new "
                                     "records linked incrementally to the existing index; full re-link with "
                                     "`placelink match --full`. Table link.person_index."),
            dg.AssetSpec(HOUSEHOLD_INDEX, group_name=GROUP, owners=OWNERS, deps=[PERSON_INDEX], kinds={"duckdb"},
                         tags={"zone": "identifiable"},
                         description="record_id -> household_id (from the UPRN and person links). "
                                     "Table link.household_index."),
        ],
        pool=IDENTIFIABLE_POOL,
        can_subset=False,
    )
    @no_leaks("matching")
    def matching(context: dg.AssetExecutionContext, identifiable_db: DuckDBResource, config: MatchingConfig,
                 placelink_settings: PlacelinkSettings):
        from orchestration.lib.matching.run import run_matching

        settings = placelink_settings.get()
        try:
            out = run_matching(settings, full=config.full, retrain=config.retrain, progress=context.log.info)
        except PlacelinkError as exc:
            raise as_failure(exc) from exc  # a DataError is not retried, another error may be transient
        yield dg.MaterializeResult(asset_key=ADDRESS_MATCHES, metadata={
            "dagster/row_count": dg.MetadataValue.int(out["records"]),
            # which erasure / opt-out lists this run applied (the nightly planner compares it with today's)
            EXCLUSIONS_METADATA: dg.MetadataValue.text(out["exclusions_fingerprint"]),
            **_metadata(out, ("excluded_",)),
            **_metadata(out, ("address_", "lsoa_"))})
        yield dg.MaterializeResult(asset_key=PERSON_INDEX, metadata={
            "dagster/row_count": dg.MetadataValue.int(out["records"]),
            "mode": dg.MetadataValue.text(out["mode"]),
            "model": dg.MetadataValue.text(str(out.get("model"))),
            "review_queue": dg.MetadataValue.path(out["review_queue"]),
            **_metadata(out, ("person", "persons_", "records_", "new_records", "merge_candidates",
                              "review_queue_pairs", "link_seconds", "weak_identifier_records",
                              "match_threshold", "expected_f1", "threshold_candidates"))})
        yield dg.MaterializeResult(asset_key=HOUSEHOLD_INDEX, metadata={
            "dagster/row_count": dg.MetadataValue.int(out["records"]),
            **_metadata(out, ("household",))})

    return matching
