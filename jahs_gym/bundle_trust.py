"""What a bundle folder may hold: the trust rules for user-supplied bundles (``JAHS_GYM_DATA`` is untrusted).

Every path a manifest names stays inside the folder (checked without opening anything); the folder holds only
the files its manifest lists (plain files and folders: no symlinked folder); a file is read through
:func:`read_listed`, which hashes the very bytes it returns; a manifest is parsed only under a size and a
nesting limit. Every refusal is one :class:`BundleError` naming the path or field and what is allowed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any, NoReturn

MAX_NESTING = 32  # a manifest's JSON nests at most this deep (the written ones: 6 levels)


class BundleError(ValueError):
    """A bundle that is missing, corrupted, of another format or not self-consistent."""


def file_sha256(path: Path | str) -> str:
    """The sha256 of a file's bytes, read in 1 MiB chunks.

    Args:
        path: The file.

    Returns:
        The hex digest.
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def inside(root: Path, rel: str) -> str | None:
    """Why ``rel`` does not name a path inside ``root`` (resolved: absolute): None when it does. Opens nothing.

    Args:
        root: The bundle folder, resolved.
        rel: A path a manifest names.

    Returns:
        The reason (a backslash or NUL, an absolute path, ``..``, or resolving outside), or None.
    """
    if "\\" in rel or "\0" in rel:
        return f"{rel!r} holds a backslash or NUL (a bundle's paths are '/'-separated)"
    if PurePosixPath(rel).is_absolute() or Path(rel).is_absolute():
        return f"{rel!r} is an absolute path"
    if ".." in PurePosixPath(rel).parts:
        return f"{rel!r} climbs out with '..'"
    if not (root / rel).resolve().is_relative_to(root):
        return f"{rel!r} resolves outside the bundle folder (a symlink?)"
    return None


def check_listing(folder: Path, files: Mapping[str, str], fix: str) -> None:
    """Every file under ``folder`` (but its manifest.json) is listed in ``files``; no symlinked folder.

    A file the manifest does not list is refused, not ignored: nothing vouches for it, and a loader that
    looks for it by name (a data card, a table) would read it unverified. ``generation fit`` lists every file
    it writes (``write_manifest`` hashes the whole folder).

    Args:
        folder: The bundle folder.
        files: The manifest's listing, path -> sha256.
        fix: What the error tells the user to do.

    Raises:
        BundleError: A symlinked folder, or a file the manifest does not list.
    """
    unlisted = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        here = Path(dirpath)
        for d in dirnames:
            if (here / d).is_symlink():
                rel = (here / d).relative_to(folder).as_posix()
                raise BundleError(f"{folder}: {rel} is a symlinked folder; allowed: plain files and folders "
                                  f"(copy what it points at into the bundle); {fix}")
        for name in filenames:
            rel = (here / name).relative_to(folder).as_posix()
            if rel != "manifest.json" and rel not in files:
                unlisted.append(rel)
    if unlisted:
        shown = sorted(unlisted)[:5] + (["..."] if len(unlisted) > 5 else [])
        raise BundleError(f"{folder}: {len(unlisted)} file(s) {shown} are not listed in the manifest; allowed: only "
                          f"the files the manifest lists and checksums (delete them, or refit the bundle); {fix}")


def read_listed(folder: Path, files: Mapping[str, str], rel: str, fix: str) -> bytes:
    """The bytes of the listed file ``rel``, checked against the manifest's sha256 (the bytes that are used).

    Args:
        folder: The bundle folder.
        files: The manifest's listing, path -> sha256.
        rel: The file's path in the listing.
        fix: What the error tells the user to do.

    Returns:
        The file's bytes.

    Raises:
        BundleError: ``rel`` is not listed, not inside the folder, missing, or its sha256 does not match.
    """
    root = folder.resolve()
    if rel not in files:
        raise BundleError(f"{folder}: {rel} is not listed in the manifest; allowed: {sorted(files)}; {fix}")
    why = inside(root, rel)
    if why:
        raise BundleError(f"{folder}: {why}; allowed: a path inside the bundle folder; {fix}")
    path = root / rel
    if not path.is_file():
        raise BundleError(f"{folder}: file {rel} listed in the manifest is missing (or not a regular file); {fix}")
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != files[rel]:
        raise BundleError(f"{folder}: file {rel} is corrupted (sha256 mismatch); {fix}")
    return data


def parse_json(text: bytes, path: Path, limit: int, fix: str) -> dict:
    """``text`` (at most ``limit`` bytes, else refused unparsed) as a JSON object nested at most MAX_NESTING deep.

    Args:
        text: The file's bytes.
        path: The file (for the error).
        limit: The most bytes allowed.
        fix: What the error tells the user to do.

    Returns:
        The parsed object.

    Raises:
        BundleError: Over ``limit`` bytes, not valid JSON, not an object, or nested too deep.
    """
    if len(text) > limit:
        raise BundleError(f"{path} is over the {limit} bytes a manifest may have; {fix}")
    try:
        data = json.loads(text.decode())
    except RecursionError:
        raise BundleError(f"{path} nests deeper than {MAX_NESTING} levels; {fix}") from None
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError, an integer over Python's digit limit
        raise BundleError(f"{path} is not valid JSON ({e}); {fix}") from None
    if not isinstance(data, dict):
        raise BundleError(f"{path} is not a JSON object; {fix}")
    _check_nesting(data, path, fix)
    return data


def _check_nesting(data: Any, path: Path, fix: str) -> None:
    stack = [(data, 1)]
    while stack:
        x, depth = stack.pop()
        if depth > MAX_NESTING:
            raise BundleError(f"{path} nests deeper than {MAX_NESTING} levels; {fix}")
        if isinstance(x, dict):
            stack.extend((v, depth + 1) for v in x.values())
        elif isinstance(x, list):
            stack.extend((v, depth + 1) for v in x)


def numbers(v: Validator, d: dict, key: str, required: tuple[str, ...], optional: tuple[str, ...]) -> None:
    """``d``'s ``required`` keys (and ``optional`` ones present) are numbers (NaN allowed: a measured score).

    Args:
        v: The validator whose ``fail`` reports a bad value (a BundleError).
        d: The dict.
        key: The dict's field name (the error's prefix).
        required: Keys that must hold a number.
        optional: Keys that must hold a number when present.
    """
    for k in (*required, *(k for k in optional if k in d)):
        x = d.get(k)
        if not (isinstance(x, float) or finite(x)):
            v.fail(f"{key}.{k}", f"is {x!r}", "a number")


def is_int(x: Any) -> bool:
    """Whether ``x`` is an int (a bool is not).

    Args:
        x: Any value.

    Returns:
        True for an int.
    """
    return isinstance(x, int) and not isinstance(x, bool)


def is_num(x: Any) -> bool:
    """Whether ``x`` is an int or a float (a bool is not).

    Args:
        x: Any value.

    Returns:
        True for a number.
    """
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def finite(x: Any) -> bool:
    """A finite number (an integer too large for a float is not).

    Args:
        x: Any value.

    Returns:
        True for a finite number.
    """
    if not is_num(x):
        return False
    try:
        return math.isfinite(x)
    except OverflowError:
        return False


class Validator:
    """Type checks of a parsed manifest's fields; each failure is one BundleError naming the field.

    Args:
        where: The manifest (the errors' prefix).
    """

    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, key: str, problem: str, allowed: str) -> NoReturn:
        """Refuse a field.

        Args:
            key: The field (cut at 200 characters).
            problem: What is wrong with it (cut at 200 characters).
            allowed: What is allowed.

        Raises:
            BundleError: Always.
        """
        key, problem = (x if len(x) <= 200 else x[:200] + "...(cut)" for x in (key, problem))
        raise BundleError(f"{self.where}: {key} {problem}; allowed: {allowed}")

    def obj(self, x: Any, key: str, allowed: str = "a dict") -> dict:
        """A field that must be a dict.

        Args:
            x: The value.
            key: The field.
            allowed: What the error says is allowed.

        Returns:
            ``x``.

        Raises:
            BundleError: ``x`` is not a dict (from :meth:`fail`).
        """
        if not isinstance(x, dict):
            self.fail(key, f"is a {type(x).__name__}", allowed)
        return x

    def text(self, x: Any, key: str) -> str:
        """A field that must be a string.

        Args:
            x: The value.
            key: The field.

        Returns:
            ``x``.

        Raises:
            BundleError: ``x`` is not a string (from :meth:`fail`).
        """
        if not isinstance(x, str):
            self.fail(key, f"is {x!r}", "a string")
        return x

    def opt_str(self, x: Any, key: str) -> str | None:
        """A field that must be a string or null.

        Args:
            x: The value.
            key: The field.

        Returns:
            ``x``.

        Raises:
            BundleError: ``x`` is neither (from :meth:`fail`).
        """
        return None if x is None else self.text(x, key)

    def opt_num(self, x: Any, key: str) -> float | None:
        """A field that must be a finite number or null.

        Args:
            x: The value.
            key: The field.

        Returns:
            ``x`` as a float, or None.

        Raises:
            BundleError: ``x`` is neither (from :meth:`fail`).
        """
        if x is not None and not finite(x):
            self.fail(key, f"is {x!r}", "a finite number or null")
        return None if x is None else float(x)

    def opt_int(self, x: Any, key: str) -> int | None:
        """A field that must be an integer or null.

        Args:
            x: The value.
            key: The field.

        Returns:
            ``x``.

        Raises:
            BundleError: ``x`` is neither (from :meth:`fail`).
        """
        if x is not None and not is_int(x):
            self.fail(key, f"is {x!r}", "an integer or null")
        return x
