"""Helpers shared by the case-file tests (not a test module)."""
from __future__ import annotations

import copy
from typing import Any


def edited(base: dict, changes: dict[str, Any]) -> dict:
    """A deep copy of ``base`` with dotted-path ``changes`` ("__" separates levels).

    A value of ``None`` deletes the key; missing intermediate sections are created.
    """
    data = copy.deepcopy(base)
    for dotted, value in changes.items():
        *head, last = dotted.split("__")
        node = data
        for key in head:
            node = node.setdefault(key, {})
        if value is None:
            node.pop(last)
        else:
            node[last] = value
    return data
