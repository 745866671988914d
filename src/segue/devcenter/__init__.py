"""The Developer Center: the admin API (JSON) and, later, the web UI."""
