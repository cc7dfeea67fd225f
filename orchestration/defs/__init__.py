"""One sub-package per domain (partner feeds, matching, dbt, quality, ml, operations, governance).

Each sub-package exposes ``defs: dagster.Definitions``; ``orchestration/definitions.py`` merges them.
"""
