"""One Spark session for every Spark test (the JVM takes ~15 s to start): local[2], 2 GB driver."""

from __future__ import annotations

import pytest

# the matching tests' synthetic county and its EM-trained model (one definition, re-exported)
from tests.matching.conftest import linkage_county, linkage_model  # noqa: F401


@pytest.fixture(scope="session")
def spark_home(tmp_path_factory):
    """A home for the session's Spark scratch (spill, checkpoints)."""
    from orchestration.lib.config import get_settings

    return get_settings(home=tmp_path_factory.mktemp("spark_session"), env="local", engine="spark").ensure()


@pytest.fixture(scope="session")
def spark(spark_home):
    from orchestration.lib.spark import spark_session, stop_spark_session

    session = spark_session(spark_home)
    yield session
    stop_spark_session()
