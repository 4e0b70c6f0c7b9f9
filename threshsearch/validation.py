"""Checks shared by every schema (architecture configs, recipes, search spaces): each problem
becomes one message naming the key path, the bad value and what would be valid."""

from __future__ import annotations

import difflib
import math
import reprlib
from collections.abc import Mapping
from dataclasses import MISSING, fields
from typing import Any

_SHORT_REPR = reprlib.Repr()
_SHORT_REPR.maxlevel, _SHORT_REPR.maxstring, _SHORT_REPR.maxother = 2, 40, 40
_SHORT_REPR.maxlist = _SHORT_REPR.maxdict = _SHORT_REPR.maxtuple = 4


def show(value: Any) -> str:
    """A short, bounded repr for error messages: safe on huge, deep or odd values."""
    try:
        text = _SHORT_REPR.repr(value)
    except (RecursionError, ValueError):
        text = f"<{type(value).__name__}>"
    return " ".join(text.split())[:80]


def join_path(path: str, key: str) -> str:
    if not path:
        return key
    return f"{path}{key}" if key.startswith("[") else f"{path}.{key}"


def unknown_key_message(path: str, key: Any, valid: list[str]) -> str:
    name = " ".join((key if isinstance(key, str) else show(key)).split())[:40] or repr(key)
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"{join_path(path, name)}: unknown key; {hint}valid keys: {', '.join(valid)}"


def parse_fields(data: Any, cls: type, path: str, problems: list[str]) -> dict[str, Any] | None:
    """The entries of ``data`` that are fields of dataclass ``cls``; unknown keys and missing
    required fields become problems. None when ``data`` is not a mapping at all."""
    if not isinstance(data, Mapping):
        where = path or "config"
        problems.append(f"{where}: expected a mapping of {cls.__name__} fields, got {show(data)}")
        return None
    names = [item.name for item in fields(cls)]
    values = {}
    for key, value in data.items():
        if key in names:
            values[key] = value
        else:
            problems.append(unknown_key_message(path, key, names))
    for item in fields(cls):
        required = item.default is MISSING and item.default_factory is MISSING
        if required and item.name not in data:
            problems.append(f"{join_path(path, item.name)}: missing (required)")
    return values


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value)


def check_int(problems: list[str], path: str, value: Any, low: int, high: int) -> None:
    if not is_int(value) or not low <= value <= high:
        problems.append(f"{path}: {show(value)} is invalid; expected an integer from {low} "
                        f"to {high}")


def check_number(problems: list[str], path: str, value: Any, low: float, high: float,
                 low_inclusive: bool = True, high_inclusive: bool = True) -> None:
    above = is_number(value) and (value >= low if low_inclusive else value > low)
    below = is_number(value) and (value <= high if high_inclusive else value < high)
    if not (above and below):
        left = "[" if low_inclusive else "("
        right = "]" if high_inclusive else ")"
        problems.append(f"{path}: {show(value)} is invalid; expected a number in "
                        f"{left}{low}, {high}{right}")


def check_choice(problems: list[str], path: str, value: Any, choices: tuple[str, ...]) -> bool:
    """Record a problem unless ``value`` is one of ``choices``; say whether it is."""
    if isinstance(value, str) and value in choices:
        return True
    problems.append(f"{path}: {show(value)} is invalid; expected one of {', '.join(choices)}")
    return False


def check_bool(problems: list[str], path: str, value: Any) -> None:
    if not isinstance(value, bool):
        problems.append(f"{path}: {show(value)} is invalid; expected true or false")
