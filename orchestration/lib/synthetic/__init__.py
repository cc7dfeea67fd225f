"""County in a box: a synthetic English county whose partner feeds look and misbehave like real ones.

Public surface::

    from orchestration.lib.synthetic import generate_county
    summary = generate_county(home, scale="small", seed=42)

Ground truth goes to ``truth/`` (never under ``landing/``). See docs/synthetic-county.md and
docs/data-dictionary.md. This package never imports dagster.
"""

from orchestration.lib.synthetic.config import DEFAULT_MONTHS, SCALES, DefectRates, ServiceRates
from orchestration.lib.synthetic.events import FEEDS
from orchestration.lib.synthetic.generate import GenerationSummary, generate_county
from orchestration.lib.synthetic.identifiers import nhs_check_digit, nhs_number_is_valid

__all__ = ["DEFAULT_MONTHS", "FEEDS", "SCALES", "DefectRates", "GenerationSummary", "ServiceRates",
           "generate_county", "nhs_check_digit", "nhs_number_is_valid"]
