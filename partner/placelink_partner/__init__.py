"""placelink-partner: validate, match and encode a partner's export on the partner's own machine.

See the repository README, section "Linking without sharing identifiers"."""

__version__ = "0.1.0"
