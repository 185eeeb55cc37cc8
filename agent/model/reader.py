"""Reader: typed, path-aware access to one JSON object of a Kubernetes manifest.

Every converter reads fields through a Reader, so type checks, defaults, range checks and
the field path in error messages (``spec.rules[0].matches[1].path.type``) are written once.
A field that is absent or ``null`` is "unset": it takes the default, or fails with
``required`` when the default is REQUIRED. Failures raise FieldError(path, message);
``convert.from_dict`` adds the object's kind, namespace and name. What a single value is
(its type named for messages, an integer, a timestamp) is told by agent/model/jsonvalue.py.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from enum import Enum, StrEnum
from typing import Any, Final, NoReturn, TypeVar, overload

from agent.model.duration import DurationError, parse_duration
from agent.model.frozen import FrozenMap
from agent.model.jsonvalue import as_int, describe, parse_timestamp, range_message
from agent.model.validation import Check, quote

T = TypeVar("T")
E = TypeVar("E", bound=StrEnum)


class FieldError(ValueError):
    """A field of the object being converted is invalid."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


class _Required(Enum):
    REQUIRED = "REQUIRED"


REQUIRED: Final = _Required.REQUIRED
"""Pass as ``default`` to make a field required."""


def _unset(default: T | _Required | None) -> T | None:
    """What an unset field reads as (a REQUIRED field has already failed)."""
    return None if isinstance(default, _Required) else default


class Reader:
    """Typed access to the fields of one JSON object, located at ``path``."""

    __slots__ = ("data", "path")

    def __init__(self, data: Mapping[str, Any], path: str = "") -> None:
        self.data = data
        self.path = path

    # --- paths and failures ---------------------------------------------------------

    def at(self, key: str | None) -> str:
        """The path of ``key`` (which may carry an index, e.g. "ports[0]") under this object."""
        if not key:
            return self.path
        if not self.path:
            return key
        return f"{self.path}.{key}"

    def fail(self, key: str | None, message: str) -> NoReturn:
        """Raise a FieldError for ``key`` (None: this object itself)."""
        raise FieldError(self.at(key), message)

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def exactly_one(self, keys: tuple[str, ...], none: str, many: str) -> None:
        """Fail unless exactly one of ``keys`` is set (a union such as a probe's handler):
        ``none`` on this object, ``many`` on the second one set."""
        present = [k for k in keys if self.has(k)]
        if not present:
            self.fail(None, none)
        if len(present) > 1:
            self.fail(present[1], many)

    def _get(self, key: str, default: object) -> Any:
        """The raw value at ``key`` (None when unset); fails if unset and required."""
        value = self.data.get(key)
        if value is None and default is REQUIRED:
            self.fail(key, "required")
        return value

    # --- scalars --------------------------------------------------------------------

    @overload
    def string(self, key: str, default: str | _Required, *, check: Check | None = ...) -> str: ...
    @overload
    def string(
        self, key: str, default: None = None, *, check: Check | None = ...
    ) -> str | None: ...

    def string(
        self, key: str, default: str | _Required | None = None, *, check: Check | None = None
    ) -> str | None:
        """A string field; ``check`` validates present values (not defaults)."""
        value = self._get(key, default)
        if value is None:
            return _unset(default)
        if not isinstance(value, str):
            self.fail(key, f"expected string, got {describe(value)}")
        if check is not None and (problem := check(value)) is not None:
            self.fail(key, problem)
        return value

    @overload
    def integer(
        self,
        key: str,
        default: int | _Required,
        *,
        minimum: int | None = ...,
        maximum: int | None = ...,
        choices: Collection[int] | None = ...,
    ) -> int: ...
    @overload
    def integer(
        self,
        key: str,
        default: None = None,
        *,
        minimum: int | None = ...,
        maximum: int | None = ...,
        choices: Collection[int] | None = ...,
    ) -> int | None: ...

    def integer(
        self,
        key: str,
        default: int | _Required | None = None,
        *,
        minimum: int | None = None,
        maximum: int | None = None,
        choices: Collection[int] | None = None,
    ) -> int | None:
        """An integer field (a JSON number without a fraction; booleans are refused)."""
        value = self._get(key, default)
        if value is None:
            return _unset(default)
        number = as_int(value)
        if number is None:
            self.fail(key, f"expected integer, got {describe(value)}")
        if (problem := range_message(number, minimum, maximum)) is not None:
            self.fail(key, problem)
        if choices is not None and number not in choices:
            supported = ", ".join(str(c) for c in choices)
            self.fail(key, f"unsupported value {number} (supported: {supported})")
        return number

    def boolean(self, key: str, default: bool | None = None) -> bool | None:
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.fail(key, f"expected boolean, got {describe(value)}")
        return value

    @overload
    def enum(self, key: str, enum_type: type[E], default: E | _Required) -> E: ...
    @overload
    def enum(self, key: str, enum_type: type[E], default: None = None) -> E | None: ...

    def enum(self, key: str, enum_type: type[E], default: E | _Required | None = None) -> E | None:
        """A string field restricted to the values of ``enum_type``."""
        value = self._get(key, default)
        if value is None:
            return _unset(default)
        if not isinstance(value, str):
            self.fail(key, f"expected string, got {describe(value)}")
        return self._to_enum(key, enum_type, value)

    def _to_enum(self, key: str, enum_type: type[E], text: str) -> E:
        try:
            return enum_type(text)
        except ValueError:
            supported = ", ".join(member.value for member in enum_type)
            self.fail(key, f"unsupported value {quote(text)} (supported: {supported})")

    @overload
    def int_or_string(
        self,
        key: str,
        default: int | str | _Required,
        *,
        int_check: Callable[[int], str | None] | None = ...,
        str_check: Check | None = ...,
    ) -> int | str: ...
    @overload
    def int_or_string(
        self,
        key: str,
        default: None = None,
        *,
        int_check: Callable[[int], str | None] | None = ...,
        str_check: Check | None = ...,
    ) -> int | str | None: ...

    def int_or_string(
        self,
        key: str,
        default: int | str | _Required | None = None,
        *,
        int_check: Callable[[int], str | None] | None = None,
        str_check: Check | None = None,
    ) -> int | str | None:
        """An IntOrString field, such as a port number or a named port."""
        value = self._get(key, default)
        if value is None:
            return None if isinstance(default, _Required) else default
        if isinstance(value, str):
            if str_check is not None and (problem := str_check(value)) is not None:
                self.fail(key, problem)
            return value
        number = as_int(value)
        if number is None:
            self.fail(key, f"expected integer or string, got {describe(value)}")
        if int_check is not None and (problem := int_check(number)) is not None:
            self.fail(key, problem)
        return number

    def duration(self, key: str) -> timedelta | None:
        """A Gateway API (GEP-2257) duration such as "10s" or "1h2m"."""
        text = self.string(key)
        if text is None:
            return None
        try:
            return parse_duration(text)
        except DurationError as exc:
            self.fail(key, str(exc))

    def timestamp(self, key: str) -> datetime | None:
        """An RFC 3339 timestamp, as an aware UTC datetime at second precision. A datetime
        (from a YAML loader that resolves timestamps) is accepted too; naive means UTC."""
        value = self.data.get(key)
        if isinstance(value, datetime):
            aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
            return aware.astimezone(UTC).replace(microsecond=0)
        text = self.string(key)
        if text is None:
            return None
        parsed = parse_timestamp(text)
        if parsed is None:
            self.fail(
                key,
                f"invalid value {quote(text)}: must be an RFC 3339 timestamp such as "
                "2024-01-02T15:04:05Z",
            )
        return parsed

    # --- collections ----------------------------------------------------------------

    def _list(self, key: str, min_items: int, max_items: int | None) -> list[Any]:
        value = self.data.get(key)
        if value is None:
            if min_items > 0:
                self.fail(key, "required")
            return []
        if not isinstance(value, list | tuple):
            self.fail(key, f"expected array, got {describe(value)}")
        if len(value) < min_items:
            self.fail(key, f"must have at least {min_items} item{'s' if min_items > 1 else ''}")
        if max_items is not None and len(value) > max_items:
            self.fail(key, f"must have at most {max_items} items, got {len(value)}")
        return list(value)

    def string_list(
        self,
        key: str,
        *,
        check: Check | None = None,
        min_items: int = 0,
        max_items: int | None = None,
        unique: bool = False,
    ) -> tuple[str, ...]:
        items = self._list(key, min_items, max_items)
        for i, item in enumerate(items):
            if not isinstance(item, str):
                self.fail(f"{key}[{i}]", f"expected string, got {describe(item)}")
            if check is not None and (problem := check(item)) is not None:
                self.fail(f"{key}[{i}]", problem)
        if unique:
            self.check_unique(key, items)
        return tuple(items)

    def integer_list(
        self,
        key: str,
        *,
        minimum: int | None = None,
        maximum: int | None = None,
        max_items: int | None = None,
        unique: bool = False,
    ) -> tuple[int, ...]:
        items = self._list(key, 0, max_items)
        numbers = []
        for i, item in enumerate(items):
            number = as_int(item)
            if number is None:
                self.fail(f"{key}[{i}]", f"expected integer, got {describe(item)}")
            if (problem := range_message(number, minimum, maximum)) is not None:
                self.fail(f"{key}[{i}]", problem)
            numbers.append(number)
        if unique:
            self.check_unique(key, numbers)
        return tuple(numbers)

    def enum_list(
        self, key: str, enum_type: type[E], *, max_items: int | None = None, unique: bool = True
    ) -> tuple[E, ...]:
        texts = self.string_list(key, max_items=max_items, unique=unique)
        return tuple(self._to_enum(f"{key}[{i}]", enum_type, t) for i, t in enumerate(texts))

    def string_map(
        self, key: str, *, key_check: Check | None = None, value_check: Check | None = None
    ) -> FrozenMap[str, str]:
        """A map of strings such as labels; errors name the entry: ``labels[app]``."""
        value = self.data.get(key)
        if value is None:
            return FrozenMap()
        if not isinstance(value, Mapping):
            self.fail(key, f"expected object, got {describe(value)}")
        for k, v in value.items():
            if not isinstance(k, str):
                self.fail(key, f"expected string keys, got {describe(k)}")
            if key_check is not None and (problem := key_check(k)) is not None:
                self.fail(f"{key}[{k}]", problem)
            if not isinstance(v, str):
                self.fail(f"{key}[{k}]", f"expected string, got {describe(v)}")
            if value_check is not None and (problem := value_check(v)) is not None:
                self.fail(f"{key}[{k}]", problem)
        return FrozenMap(value)

    def child(self, key: str) -> Reader:
        """A Reader for the object at ``key``; an unset field reads as an empty object."""
        value = self.data.get(key)
        if value is None:
            return Reader({}, self.at(key))
        if not isinstance(value, Mapping):
            self.fail(key, f"expected object, got {describe(value)}")
        return Reader(value, self.at(key))

    @overload
    def obj(self, key: str, read: Callable[[Reader], T], default: T | _Required) -> T: ...
    @overload
    def obj(self, key: str, read: Callable[[Reader], T], default: None = None) -> T | None: ...

    def obj(
        self, key: str, read: Callable[[Reader], T], default: T | _Required | None = None
    ) -> T | None:
        """Convert the object at ``key`` with ``read``; unset gives ``default``."""
        if self._get(key, default) is None:
            return _unset(default)
        return read(self.child(key))

    def objects(
        self,
        key: str,
        read: Callable[[Reader], T],
        *,
        min_items: int = 0,
        max_items: int | None = None,
    ) -> tuple[T, ...]:
        """Convert each object of the array at ``key`` with ``read``."""
        items = self._list(key, min_items, max_items)
        result = []
        for i, item in enumerate(items):
            item_key = f"{key}[{i}]"
            if not isinstance(item, Mapping):
                self.fail(item_key, f"expected object, got {describe(item)}")
            result.append(read(Reader(item, self.at(item_key))))
        return tuple(result)

    # --- cross-field checks -----------------------------------------------------------

    def check_unique(self, key: str, values: Sequence[object], field: str | None = None) -> None:
        """Fail at the first repeated value of the array at ``key`` (``None`` values are
        skipped); ``field`` names the member compared, for the error path."""
        seen: set[object] = set()
        for i, value in enumerate(values):
            if value is None:
                continue
            if value in seen:
                suffix = f".{field}" if field else ""
                shown = quote(value) if isinstance(value, str | int) else str(value)
                self.fail(f"{key}[{i}]{suffix}", f"duplicate value {shown}")
            seen.add(value)
