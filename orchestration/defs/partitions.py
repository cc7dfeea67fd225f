"""The one monthly partitioning every partner feed (and anything partitioned like them) shares.

A drop on 2025-03-04 fills partition ``2025-03-01`` (docs/architecture.md); ``end_offset=1`` makes the
current month exist so this month's drops can load before it ends.
"""

from __future__ import annotations

import dagster as dg

from orchestration.lib.config import PARTITION_START

monthly_partitions = dg.MonthlyPartitionsDefinition(start_date=PARTITION_START, end_offset=1)
