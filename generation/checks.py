"""The one check of the numbers the generation commands and functions take.

A :class:`Limit` states what a number may be. ``limit.check(name, value)`` refuses anything else with one
line naming the value and what is allowed; used as an argparse ``type`` it parses and checks a command-line
value, so the command refuses it before any work. A rule is written once, as a ``Limit``, and both the
command line and the Python function use it.
"""

from __future__ import annotations

import argparse
import math
import numbers
from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    """An integer or a finite real number within optional bounds (inclusive unless ``*_open``)."""

    kind: type = int  # int or float
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def allowed(self) -> str:
        """What the limit allows, in words.

        Returns:
            E.g. ``"an integer >= 0"``, ``"a finite number in [0, 1)"``.
        """
        what = "an integer" if self.kind is int else "a finite number"
        lo = None if self.lo is None else f"{'>' if self.lo_open else '>='} {self.lo:g}"
        hi = None if self.hi is None else f"{'<' if self.hi_open else '<='} {self.hi:g}"
        if self.kind is int and self.lo == 1 and not self.lo_open and hi is None:
            return "a positive integer (>= 1)"
        if lo and hi:
            return f"{what} in {'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}{')' if self.hi_open else ']'}"
        return " ".join(x for x in (what, lo or hi) if x)

    def ok(self, value: object) -> bool:
        """Whether a value is allowed.

        Args:
            value: Any object.

        Returns:
            True for a value of the kind (an int for ``int``, never a bool), finite and within the bounds.
        """
        if isinstance(value, bool) or not isinstance(value, numbers.Integral if self.kind is int else numbers.Real):
            return False
        v = float(value)
        if not math.isfinite(v):
            return False
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            return False
        return self.hi is None or (v < self.hi if self.hi_open else v <= self.hi)

    def check(self, name: str, value: object, error: type[Exception] = ValueError) -> int | float:
        """The value when it is allowed.

        Args:
            name: How the message names the value (a parameter or option name).
            value: The value to check.
            error: The exception class raised for a value that is not allowed.

        Returns:
            ``value`` as an int (``kind`` int) or a float.

        Raises:
            error: ``"name=value: allowed: ..."`` when the value is not allowed.
        """
        if not self.ok(value):
            raise error(f"{name}={value!r}: allowed: {self.allowed()}")
        return int(value) if self.kind is int else float(value)

    def __call__(self, text: str) -> int | float:
        """Parse and check a command-line value (the argparse ``type`` form).

        Args:
            text: The command-line text.

        Returns:
            The parsed value.

        Raises:
            argparse.ArgumentTypeError: Text that does not parse, or a value that is not allowed.
        """
        try:
            value = self.kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if self.kind is int else 'a number'};"
                                             f" allowed: {self.allowed()}") from None
        if not self.ok(value):
            raise argparse.ArgumentTypeError(f"{text}: allowed: {self.allowed()}")
        return value


POSITIVE = Limit(int, 1)
NON_NEGATIVE = Limit(int, 0)
