"""ML: models trained on the marts behind the ethics gate, and their predictions (group ``ml``).

Thin wrappers over :mod:`ml.train` and :mod:`ml.score`; see docs/models.md.
"""

from __future__ import annotations

import dagster as dg

from orchestration.defs.ml.assets import ML_ASSETS

defs = dg.Definitions(
    assets=ML_ASSETS,
    jobs=[dg.define_asset_job("ml_train_and_score_job", selection=dg.AssetSelection.groups("ml"),
                              description="Train every model, run the ethics gate, then score from the champions.",
                              tags={"placelink/stage": "ml"})],
)
