"""RFC 7396 JSON merge patch: the test cases of the RFC's appendix A, and immutability."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tasks_server.tasks import merge_patch

RFC_7396_EXAMPLES: list[tuple[Any, Any, Any]] = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "patch", "expected"), RFC_7396_EXAMPLES)
def test_rfc_7396_examples(target: Any, patch: Any, expected: Any) -> None:
    assert merge_patch(target, patch) == expected


def test_a_registration_body_patch_changes_only_what_it_names() -> None:
    body = {
        "httpRequest": {"url": "http://t.example/a", "method": "POST", "headers": {"A": "1"}},
        "config": {"retry": 1, "retryInterval": 500},
        "metadata": {"tag": "x"},
    }
    patched = merge_patch(body, {"config": {"retry": 3}, "httpRequest": {"headers": {"A": None}}})
    assert patched == {
        "httpRequest": {"url": "http://t.example/a", "method": "POST", "headers": {}},
        "config": {"retry": 3, "retryInterval": 500},
        "metadata": {"tag": "x"},
    }


def test_the_target_is_left_untouched() -> None:
    target = {"a": {"b": 1, "c": 2}, "d": 3}
    before = copy.deepcopy(target)
    merge_patch(target, {"a": {"b": None}, "d": None})
    assert target == before
