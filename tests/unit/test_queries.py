"""Named SQL queries: ``-- name: NAME`` blocks in one .sql file per dialect."""

from __future__ import annotations

from segue.store.queries import load_migrations, load_queries, parse_queries


def test_blocks_are_split_on_name_markers() -> None:
    text = """
-- name: first
SELECT 1;

-- name: second
INSERT INTO t (a, b)
VALUES (?, ?);
"""
    assert parse_queries(text) == {
        "first": "SELECT 1",
        "second": "INSERT INTO t (a, b)\nVALUES (?, ?)",
    }


def test_text_before_the_first_marker_is_ignored() -> None:
    text = "-- a header comment\nPRAGMA nothing;\n-- name: only\nSELECT 2;\n"
    assert parse_queries(text) == {"only": "SELECT 2"}


def test_comment_lines_inside_a_block_are_dropped() -> None:
    text = "-- name: q\n-- explains the query\nSELECT a\n  -- indented comment stays\nFROM t;\n"
    assert parse_queries(text) == {"q": "SELECT a\n  -- indented comment stays\nFROM t"}


def test_only_the_trailing_semicolon_is_stripped() -> None:
    text = "-- name: q\nSELECT ';' AS s;   \n\n\n"
    assert parse_queries(text) == {"q": "SELECT ';' AS s"}


def test_name_is_stripped_and_last_block_needs_no_terminator() -> None:
    assert parse_queries("-- name:   spaced   \nSELECT 3") == {"spaced": "SELECT 3"}


def test_empty_block() -> None:
    assert parse_queries("-- name: empty\n-- name: next\nSELECT 4;") == {
        "empty": "",
        "next": "SELECT 4",
    }


def test_no_markers_no_queries() -> None:
    assert parse_queries("") == {}
    assert parse_queries("SELECT 1;\n-- just comments\n") == {}


def test_sqlite_queries_load() -> None:
    queries = load_queries("sqlite")
    for name in ("insert_source", "select_sources", "update_source", "insert_event"):
        assert name in queries
        assert queries[name]
        assert not queries[name].endswith(";")
        assert "-- name:" not in queries[name]
    assert queries["insert_source"].startswith("INSERT INTO sources")


def test_sqlite_migrations_are_ordered_and_numbered() -> None:
    migrations = load_migrations("sqlite")
    assert migrations
    versions = [version for version, _, _ in migrations]
    assert versions == sorted(versions)
    assert len(set(versions)) == len(versions)
    assert versions[0] == 1
    for version, name, sql in migrations:
        assert int(name.split("_", 1)[0]) == version
        assert name.endswith(".sql")
        assert sql.strip()
    assert "CREATE TABLE" in migrations[0][2].upper()


def test_sqlite_urls_follow_the_three_and_four_slash_rule() -> None:
    from segue.store.factory import sqlite_path_and_mode

    assert sqlite_path_and_mode("sqlite:///relative/segue.db") == ("relative/segue.db", "full")
    assert sqlite_path_and_mode("sqlite:////abs/segue.db?synchronous=NORMAL") == (
        "/abs/segue.db",
        "normal",
    )
