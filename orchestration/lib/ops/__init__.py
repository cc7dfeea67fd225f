"""Nightly operations without Dagster: which drops are new, where alerts go, which instance profile to use."""

from orchestration.lib.ops.alerts import Alert, AlertSink, JsonLinesFileSink, WebhookSink, default_sink
from orchestration.lib.ops.drops import (
    Drop,
    feed_of_asset_key,
    list_drops,
    partition_of_drop,
    pending_partitions,
)
from orchestration.lib.ops.profiles import dagster_yaml_template, ensure_dagster_home

__all__ = [
    "Alert", "AlertSink", "JsonLinesFileSink", "WebhookSink", "default_sink",
    "Drop", "feed_of_asset_key", "list_drops", "partition_of_drop", "pending_partitions",
    "dagster_yaml_template", "ensure_dagster_home",
]
