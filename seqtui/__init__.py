"""seqtui: find, judge and safely repair PostgreSQL sequences that fell behind their tables."""

__version__ = "0.1.0"
