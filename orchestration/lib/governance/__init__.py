"""Governance, the Five Safes in code: audit trail, roles, erasure, retention, output checking, register.

Other stages record what they do with :func:`record_event` and honour erasures with
:func:`excluded_person_keys` / :func:`is_excluded_record` / :func:`is_excluded_person`.
"""

from orchestration.lib.governance.audit import read_events, record_event, record_events, verify
from orchestration.lib.governance.erasure import (
    erase,
    excluded_person_keys,
    excluded_record_hashes,
    is_excluded_person,
    is_excluded_record,
    record_hash,
)
from orchestration.lib.governance.retention import apply_retention
from orchestration.lib.governance.roles import connect

__all__ = ["apply_retention", "connect", "erase", "excluded_person_keys", "excluded_record_hashes",
           "is_excluded_person", "is_excluded_record", "read_events", "record_event", "record_events", "record_hash", "verify"]
