"""Matching: address -> UPRN -> LSOA, and Splink person linkage into a stable person and household index.

Public surface (no Dagster import anywhere in this package):

- :func:`orchestration.lib.linkage.address.match_addresses` -- free-text address + postcode -> UPRN, LSOA.
- :func:`orchestration.lib.linkage.person.link_people` -- Splink (DuckDB) dedupe of standard person records.
- :func:`orchestration.lib.linkage.index.update_index` -- stable person/household keys, incremental or full.
- :func:`orchestration.lib.linkage.metrics.pairwise_metrics` -- precision/recall/F1 against truth.
- :func:`orchestration.lib.linkage.run.run_matching` / :func:`~orchestration.lib.linkage.run.link_file` --
  the stage as the CLI and Dagster call it.
"""
