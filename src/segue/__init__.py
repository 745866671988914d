"""segue: a self-hostable event router that speaks Segment's protocols."""

__version__ = "0.1.0"
