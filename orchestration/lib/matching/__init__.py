"""Matching: address -> UPRN -> LSOA, and Splink person linkage into a stable person and household index.

Public surface (no Dagster import anywhere in this package):

- :func:`orchestration.lib.matching.address.match_addresses` -- free-text address + postcode -> UPRN, LSOA.
- :func:`orchestration.lib.matching.person.link_people` -- Splink (DuckDB) dedupe of standard person records.
- :func:`orchestration.lib.matching.index.update_index` -- stable person/household keys, incremental or full.
- :func:`orchestration.lib.matching.metrics.pairwise_metrics` -- precision/recall/F1 against truth.
- :func:`orchestration.lib.matching.run.run_matching` / :func:`~orchestration.lib.matching.run.link_file` --
  the stage as the CLI and Dagster call it.
"""
