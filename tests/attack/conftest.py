"""Fixtures the attack suite shares with the feeds tests: one definition, in tests/feeds/conftest.py."""

from tests.feeds.conftest import acme_home  # noqa: F401 - re-exported so tests/attack sees the fixture
