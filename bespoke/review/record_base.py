"""The machinery of the process report's records (bespoke.review.records): JSON out with the field names as keys,
JSON in strictly (an unknown key, a missing required key or a record that is not an object is an error saying
where in the file)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, fields
from typing import Any, TypeVar


class ReportFormatError(ValueError):
    """A report (or journal) record that is not what this bespoke writes; the message says where in it."""


R = TypeVar("R", bound="_Record")


class _Record:
    """A report record: JSON out with its field names as keys, JSON in with unknown keys refused."""

    __slots__ = ()

    def to_json(self) -> dict[str, Any]:
        """The record as plain JSON values, keys in field order."""
        return {name: _plain(getattr(self, name)) for name in _names(type(self))}

    @classmethod
    def from_json(cls: type[R], data: object, where: str) -> R:
        """The record of `data` (`where`: its place in the file, for the error)."""
        return cls(**_values(cls, data, where))


def _plain(value: Any) -> Any:
    if isinstance(value, _Record):
        return value.to_json()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


_NAMES: dict[type, tuple[str, ...]] = {}
_REQUIRED: dict[type, tuple[str, ...]] = {}


def _names(cls: type) -> tuple[str, ...]:
    if cls not in _NAMES:  # thousands of records per report: fields() once per class
        _NAMES[cls] = tuple(f.name for f in fields(cls))
    return _NAMES[cls]


def _required(cls: type) -> tuple[str, ...]:
    if cls not in _REQUIRED:
        _REQUIRED[cls] = tuple(f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING)
    return _REQUIRED[cls]


def _fail(where: str, text: str) -> ReportFormatError:
    return ReportFormatError(f"{where}: {text}" if where else text)


def _at(where: str, key: str) -> str:
    """The place of `key` inside the record at `where` (samples[3].grid)."""
    return f"{where}.{key}" if where else key


def _values(cls: type, data: object, where: str) -> dict[str, Any]:
    """`data` as constructor values of `cls`: an object with no unknown and no missing required key."""
    if not isinstance(data, dict):
        raise _fail(where, "not a JSON object")
    unknown = sorted(set(data) - set(_names(cls)))
    if unknown:
        raise _fail(where, f"unknown key(s) {', '.join(map(str, unknown))}")
    missing = [name for name in _required(cls) if name not in data]
    if missing:
        raise _fail(where, f"missing key(s) {', '.join(missing)}")
    return dict(data)


def _items(data: object, where: str, kind: type) -> Any:
    if not isinstance(data, kind):
        raise _fail(where, f"not a JSON {'array' if kind is list else 'object'}")
    return data


def _each(build: Callable[[object, str], R], data: object, where: str) -> list[R]:
    return [build(item, f"{where}[{i}]") for i, item in enumerate(_items(data, where, list))]


def _by_name(build: Callable[[object, str], R], data: object, where: str) -> dict[str, R]:
    return {key: build(item, _at(where, key)) for key, item in _items(data, where, dict).items()}


def _optional(build: Callable[[object, str], R], data: object, where: str) -> R | None:
    return None if data is None else build(data, where)
