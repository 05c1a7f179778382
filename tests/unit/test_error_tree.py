"""Validation errors rendered as the original's zod tree: one node per field with ``_errors``."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from tasks_server.api.errors import error_tree
from tasks_server.spec import TaskSpec

REQUEST = {"url": "http://target.example/hook", "method": "POST"}


def tree_of(body: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(ValidationError) as invalid:
        TaskSpec.model_validate(body)
    return error_tree(invalid.value.errors())


def test_no_errors_is_an_empty_root() -> None:
    assert error_tree([]) == {"_errors": []}


def test_errors_nest_by_field_path() -> None:
    errors = [
        {"loc": ("config", "retry"), "msg": "Input should be a valid integer", "type": "int_type"},
        {"loc": ("config", "timeout"), "msg": "too small", "type": "greater_than_equal"},
        {"loc": ("config", "timeout"), "msg": "another", "type": "x"},
        {"loc": (), "msg": "Invalid JSON", "type": "json_invalid"},
    ]
    assert error_tree(errors) == {
        "_errors": ["Invalid JSON"],
        "config": {
            "_errors": [],
            "retry": {"_errors": ["Input should be a valid integer"]},
            "timeout": {"_errors": ["too small", "another"]},
        },
    }


def test_list_indexes_become_nodes() -> None:
    tree = tree_of({"httpRequest": REQUEST, "config": {"ignoreStatusCode": [404, 200]}})
    assert tree == {
        "_errors": [],
        "config": {
            "_errors": [],
            "ignoreStatusCode": {
                "_errors": [],
                "1": {"_errors": ["Input should be greater than or equal to 400"]},
            },
        },
    }


def test_the_value_error_prefix_is_dropped() -> None:
    tree = tree_of({"httpRequest": {**REQUEST, "method": "HEAD"}})
    assert tree["httpRequest"]["method"] == {
        "_errors": ["Method must be one of GET, POST, PUT, PATCH, DELETE"]
    }


def test_a_missing_field() -> None:
    assert tree_of({}) == {"_errors": [], "httpRequest": {"_errors": ["Field required"]}}


def test_an_unknown_key_is_reported_on_its_object() -> None:
    assert tree_of({"httpRequest": REQUEST, "extra": 1}) == {
        "_errors": ["Unrecognized key(s) in object: 'extra'"]
    }
    assert tree_of({"httpRequest": {**REQUEST, "body": "x"}}) == {
        "_errors": [],
        "httpRequest": {"_errors": ["Unrecognized key(s) in object: 'body'"]},
    }
    assert tree_of({"httpRequest": REQUEST, "config": {"retries": 3}}) == {
        "_errors": [],
        "config": {"_errors": ["Unrecognized key(s) in object: 'retries'"]},
    }


def test_union_branch_names_do_not_become_nodes() -> None:
    tree = tree_of({"httpRequest": {**REQUEST, "data": [{"name": "a", "value": "b", "x": 1}]}})
    data = tree["httpRequest"]["data"]
    assert data["0"] == {"_errors": ["Unrecognized key(s) in object: 'x'"]}
    assert set(data) == {"_errors", "0"}


@pytest.mark.parametrize("key", ["x-request-id", "json"])
def test_an_unknown_top_level_key_is_named_whatever_its_spelling(key: str) -> None:
    assert tree_of({"httpRequest": REQUEST, key: 1}) == {
        "_errors": [f"Unrecognized key(s) in object: '{key}'"]
    }


@pytest.mark.parametrize("key", ["x-request-id", "form"])
def test_an_unknown_nested_key_is_named_on_its_own_object(key: str) -> None:
    assert tree_of({"httpRequest": {**REQUEST, key: "1"}}) == {
        "_errors": [],
        "httpRequest": {"_errors": [f"Unrecognized key(s) in object: '{key}'"]},
    }
