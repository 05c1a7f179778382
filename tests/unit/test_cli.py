"""``tasks-server``: flags, environment variables and their validation."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from tasks_server import cli as cli_module
from tasks_server.config import Settings

FLAGS = [
    "--host",
    "--port",
    "--db",
    "--owner-queue-limit",
    "--max-body-bytes",
    "--response-max-bytes",
    "--max-in-flight",
    "--sqlite-synchronous",
    "--shutdown-grace",
    "--log-level",
]


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[Settings]:
    """The settings the server would have been started with (instead of starting it)."""
    calls: list[Settings] = []
    monkeypatch.setattr(cli_module, "run", calls.append)
    return calls


def invoke(*args: str, env: dict[str, str | None] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli_module.cli, list(args), env=env)
    return result.exit_code, result.output


def test_serve_help_lists_every_flag_and_its_variable() -> None:
    code, output = invoke("serve", "--help")
    assert code == 0
    for flag in FLAGS:
        assert re.search(rf"{flag}\b", output), flag
        variable = "TASKS_" + flag.removeprefix("--").replace("-", "_").upper()
        assert variable in output


def test_no_arguments_shows_the_commands() -> None:
    code, output = invoke()
    assert code in (0, 2)
    assert "serve" in output


def test_defaults(started: list[Settings]) -> None:
    unset: dict[str, str | None] = {
        "TASKS_" + flag.removeprefix("--").replace("-", "_").upper(): None for flag in FLAGS
    }
    code, output = invoke("serve", env=unset)
    assert code == 0, output
    assert started == [Settings()]


def test_flags_reach_the_settings(started: list[Settings]) -> None:
    code, output = invoke(
        "serve",
        "--host", "0.0.0.0",
        "--port", "9999",
        "--db", "/tmp/elsewhere/tasks.db",
        "--owner-queue-limit", "5",
        "--max-body-bytes", "100",
        "--response-max-bytes", "200",
        "--max-in-flight", "7",
        "--sqlite-synchronous", "normal",
        "--shutdown-grace", "2.5",
        "--log-level", "debug",
    )  # fmt: skip
    assert code == 0, output
    [settings] = started
    assert settings.host == "0.0.0.0"
    assert settings.port == 9999
    assert str(settings.db) == "/tmp/elsewhere/tasks.db"
    assert settings.owner_queue_limit == 5
    assert settings.max_body_bytes == 100
    assert settings.response_max_bytes == 200
    assert settings.max_in_flight == 7
    assert settings.sqlite_synchronous == "NORMAL"
    assert settings.shutdown_grace_s == 2.5
    assert settings.log_level == "debug"


def test_environment_variables_reach_the_settings(started: list[Settings]) -> None:
    code, output = invoke(
        "serve", env={"TASKS_PORT": "7000", "TASKS_SQLITE_SYNCHRONOUS": "extra"}
    )
    assert code == 0, output
    assert (started[0].port, started[0].sqlite_synchronous) == (7000, "EXTRA")


@pytest.mark.parametrize("value", ["OFF", "sometimes", ""])
def test_an_invalid_synchronous_mode_is_refused(started: list[Settings], value: str) -> None:
    code, output = invoke("serve", "--sqlite-synchronous", value)
    assert code == 2
    assert "must be FULL, NORMAL or EXTRA" in output
    assert started == []


def test_a_port_that_is_not_a_number_is_refused(started: list[Settings]) -> None:
    code, _ = invoke("serve", "--port", "http")
    assert code == 2
    assert started == []
