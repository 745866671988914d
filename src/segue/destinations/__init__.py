"""Apps (reusable destination definitions) and destinations (configured instances)."""
