"""ML: models trained on the marts behind the ethics gate, and their predictions (group ``ml``).

Thin wrappers over :mod:`ml.train` and :mod:`ml.score`; see docs/ml.md.
"""

from __future__ import annotations

import dagster as dg

from orchestration.defs.ml.assets import ML_ASSETS

ml_train_and_score_job = dg.define_asset_job(
    "ml_train_and_score_job", selection=dg.AssetSelection.groups("ml"),
    description="Train every model, run the ethics gate, then score from the champions.",
    tags={"placelink/stage": "ml"})

#: Retraining is weekly, not nightly: the nightly refresh only scores with the champion.
ml_weekly_training_schedule = dg.ScheduleDefinition(
    name="ml_weekly_training_schedule", job=ml_train_and_score_job, cron_schedule="0 3 * * 0",
    execution_timezone="Europe/London", default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Sundays 03:00 Europe/London, after the nightly refresh: retrain every model, run the ethics gate, "
                "re-score from the champions (the nightly refresh only scores).")

defs = dg.Definitions(assets=ML_ASSETS, jobs=[ml_train_and_score_job], schedules=[ml_weekly_training_schedule])
