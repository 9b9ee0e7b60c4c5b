"""attrs validators for value types: one rule and one message for each kind of field.

Every validator raises ``ValueError`` naming the field and the value, and, for a number
out of range, the bound it crossed: ``size must be <= 1, got 1.5``. Bounds are shown as
given (``0.0`` stays ``0.0``). Booleans are never numbers here, although Python counts
``True`` as ``1``. Light module: no numpy import.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

__all__ = [
    "Validator",
    "finite",
    "number",
    "integer",
    "one_of",
    "boolean",
    "non_empty_str",
    "optional",
]

#: What attrs calls: ``validator(instance, attribute, value)``, raising on a bad value.
Validator = Callable[[Any, Any, Any], None]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def finite(instance: Any, attribute: Any, value: Any) -> None:
    """A finite int or float (not a bool, NaN or infinity)."""
    if not _is_number(value):
        raise ValueError(f"{attribute.name} must be a finite number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{attribute.name} must be finite, got {value!r}")


def _crossed(value: Any, low: Any, high: Any, low_open: bool, high_open: bool) -> str | None:
    """The bound ``value`` breaks, as the message says it (``None`` when it is within them)."""
    if low is not None and (value <= low if low_open else value < low):
        return f"{'>' if low_open else '>='} {low}"
    if high is not None and (value >= high if high_open else value > high):
        return f"{'<' if high_open else '<='} {high}"
    return None


def number(low: float | None = None, high: float | None = None, *, low_open: bool = False,
           high_open: bool = False) -> Validator:
    """A finite number within ``[low, high]`` (an open end with ``low_open`` / ``high_open``)."""

    def check(instance: Any, attribute: Any, value: Any) -> None:
        finite(instance, attribute, value)
        bound = _crossed(value, low, high, low_open, high_open)
        if bound is not None:
            raise ValueError(f"{attribute.name} must be {bound}, got {value!r}")

    return check


def integer(low: int | None = None, high: int | None = None, *, numpy: bool = False) -> Validator:
    """An ``int`` (not a bool; a numpy integer too with ``numpy``) within ``[low, high]``."""
    kinds: type | tuple[type, ...] = numbers.Integral if numpy else int
    if low is not None and high is not None:
        wanted = f"an integer from {low} to {high}"
    elif low is not None:
        wanted = f"an integer >= {low}"
    elif high is not None:
        wanted = f"an integer <= {high}"
    else:
        wanted = "an integer"

    def check(instance: Any, attribute: Any, value: Any) -> None:
        if not isinstance(value, kinds) or isinstance(value, bool) or _crossed(value, low, high, False, False):
            raise ValueError(f"{attribute.name} must be {wanted}, got {value!r}")

    return check


def one_of(*choices: Any) -> Validator:
    """One of ``choices`` (compared with ``==``)."""

    def check(instance: Any, attribute: Any, value: Any) -> None:
        if isinstance(value, bool) or value not in choices:
            raise ValueError(f"{attribute.name} must be one of {', '.join(map(str, choices))}; got {value!r}")

    return check


def boolean(instance: Any, attribute: Any, value: Any) -> None:
    """``True`` or ``False`` (not ``1``, ``"yes"`` or ``None``)."""
    if not isinstance(value, bool):
        raise ValueError(f"{attribute.name} must be true or false, got {value!r}")


def non_empty_str(instance: Any, attribute: Any, value: Any) -> None:
    """A string with something besides white space."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{attribute.name} must be a non-empty string, got {value!r}")


def optional(validator: Validator) -> Validator:
    """``None``, or what ``validator`` accepts."""

    def check(instance: Any, attribute: Any, value: Any) -> None:
        if value is not None:
            validator(instance, attribute, value)

    return check
