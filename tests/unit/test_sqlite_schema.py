"""The SQLite dialect's statement file and its versioned migrations."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest

from tasks_server.store.sqlite import store as store_module
from tasks_server.store.sqlite.migrate import migrate, migrations
from tasks_server.store.sqlite.queries import QUERIES, load


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(tmp_path / "schema.db", isolation_level=None)
    yield connection
    connection.close()


def tables(conn: sqlite3.Connection) -> set[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'trigger')")
    return {name for (name,) in rows}


class TestLoad:
    def test_named_blocks_become_statements(self) -> None:
        text = (
            "-- name: first\nSELECT 1;\n\n"
            "-- name: second\n-- a comment kept with its statement\nSELECT 2\nFROM t;\n"
        )
        assert load(text) == {
            "first": "SELECT 1;",
            "second": "-- a comment kept with its statement\nSELECT 2\nFROM t;",
        }

    def test_text_before_the_first_name_is_ignored(self) -> None:
        assert load("-- file header\n-- name: only\nSELECT 1;") == {"only": "SELECT 1;"}

    def test_no_names_no_statements(self) -> None:
        assert load("SELECT 1;") == {}

    def test_the_shipped_file_names_every_statement_the_store_uses(self) -> None:
        source = Path(store_module.__file__).read_text()
        used = set(re.findall(r'QUERIES\["(\w+)"\]', source))
        assert used
        assert used <= set(QUERIES)
        assert all(QUERIES[name] for name in QUERIES)

    def test_every_shipped_statement_compiles_against_the_schema(
        self, conn: sqlite3.Connection
    ) -> None:
        migrate(conn)
        for name, sql in QUERIES.items():
            sql = sql.format(state_filter="", order="created_at", direction="ASC")
            statement = "\n".join(
                line for line in sql.splitlines() if not line.lstrip().startswith("--")
            )
            try:
                conn.execute(f"EXPLAIN {statement}", _null_parameters(statement))
            except sqlite3.Error as exc:
                pytest.fail(f"{name}: {exc}")


def _null_parameters(sql: str) -> dict[str, None]:
    return dict.fromkeys(re.findall(r":(\w+)", sql))


class TestMigrations:
    def test_files_are_numbered_and_sorted(self) -> None:
        found = migrations()
        versions = [version for version, _ in found]
        assert versions == sorted(versions)
        assert versions[0] == 1
        assert len(set(versions)) == len(versions)
        names = [
            entry.name
            for entry in resources.files("tasks_server.store.sqlite")
            .joinpath("migrations")
            .iterdir()
            if entry.name.endswith(".sql")
        ]
        assert len(names) == len(found)

    def test_a_fresh_database_gets_the_schema_and_its_version(
        self, conn: sqlite3.Connection
    ) -> None:
        latest = migrations()[-1][0]
        assert migrate(conn) == latest
        assert conn.execute("PRAGMA user_version").fetchone()[0] == latest
        assert {"owners", "tasks", "attempts", "tasks_count_insert"} <= tables(conn)

    def test_applying_again_changes_nothing(self, conn: sqlite3.Connection) -> None:
        version = migrate(conn)
        conn.execute(
            "INSERT INTO owners (id, name, key_hash, created_at) VALUES ('o', 'owner', x'00', 1)"
        )
        schema = conn.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
        assert migrate(conn) == version
        assert migrate(conn) == version
        assert conn.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall() == schema
        assert conn.execute("SELECT name FROM owners").fetchall() == [("owner",)]

    def test_a_database_from_the_future_is_left_alone(self, conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA user_version = 999")
        assert migrate(conn) == 999
        assert "tasks" not in tables(conn)

    def test_the_schema_refuses_an_unknown_state(self, conn: sqlite3.Connection) -> None:
        migrate(conn)
        conn.execute(
            "INSERT INTO owners (id, name, key_hash, created_at) VALUES ('o', 'owner', x'00', 1)"
        )
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute(
                "INSERT INTO tasks (id, owner_id, state, created_at, estimate_execution_at,"
                " timeout_ms, spec, delivery) VALUES ('t', 'o', 'DONE', 1, 1, 1, '{}', '{}')"
            )


class TestSigningSecretsMigration:
    def version_1(self, conn: sqlite3.Connection) -> None:
        [(version, script)] = [m for m in migrations() if m[0] == 1]
        conn.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {version};\nCOMMIT;")
        conn.execute(
            "INSERT INTO owners (id, name, key_hash, created_at) VALUES ('o', 'owner', x'00', 1)"
        )

    def test_a_version_1_database_is_upgraded_with_its_rows(
        self, conn: sqlite3.Connection
    ) -> None:
        self.version_1(conn)
        assert "signing_secrets" not in tables(conn)
        assert migrate(conn) == migrations()[-1][0]
        assert "signing_secrets" in tables(conn)
        assert conn.execute("SELECT id, name FROM owners").fetchall() == [("o", "owner")]

    def test_secrets_belong_to_an_owner_and_go_with_it(self, conn: sqlite3.Connection) -> None:
        migrate(conn)
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute(
            "INSERT INTO owners (id, name, key_hash, created_at) VALUES ('o', 'owner', x'00', 1)"
        )
        conn.execute(
            "INSERT INTO signing_secrets (owner_id, secret, created_at) VALUES ('o', 's', 1)"
        )
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute(
                "INSERT INTO signing_secrets (owner_id, secret, created_at) VALUES ('x', 's', 1)"
            )
        conn.execute("DELETE FROM owners WHERE id = 'o'")
        assert conn.execute("SELECT count(*) FROM signing_secrets").fetchone() == (0,)
