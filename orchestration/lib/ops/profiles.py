"""The Dagster instance profile (``infra/dagster.<env>.yaml``) that goes with the environment.

The settings' ``env`` (``PLACELINK_ENV``) decides the profile, as it decides everything else: ``local`` keeps
Dagster's runs, event log and schedules in SQLite under ``<home>/dagster``; ``production`` keeps them in Postgres
(credentials from ``DAGSTER_PG_*`` environment variables, never in the file).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from orchestration.lib.config import Settings
from orchestration.lib.errors import PlacelinkError

INFRA = Path(__file__).resolve().parents[3] / "infra"


def dagster_yaml_template(env: str) -> Path:
    """``infra/dagster.<env>.yaml`` for ``local`` or ``production``."""
    path = INFRA / f"dagster.{env}.yaml"
    if not path.exists():
        raise PlacelinkError(
            f"no Dagster instance profile for environment {env!r}",
            where=str(path),
            fix="restore infra/dagster.local.yaml / infra/dagster.production.yaml from git",
        )
    return path


def ensure_dagster_home(settings: Settings) -> Path:
    """Create ``<home>/dagster`` and copy the profile's ``dagster.yaml`` there unless one exists.

    An existing ``dagster.yaml`` is kept: operators may have tuned it (e.g. run limits).
    Returns the Dagster home (what ``DAGSTER_HOME`` must point at).
    """
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    if not target.exists():
        shutil.copyfile(dagster_yaml_template(settings.env), target)
    return home
