from segue.store.sqlite.backend import SQLiteStore

__all__ = ["SQLiteStore"]
