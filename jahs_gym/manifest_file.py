"""A bundle folder's ``manifest.json``: reading and verifying it against the folder, and writing it.

:class:`jahs_gym.manifest.Manifest` is the typed, checked manifest; this module adds what needs the folder: the
file's size, its own sha256, the encoding, that a folder named after a task holds that task, that the folder holds
only listed files, and the sha256 of every file (the folder rules: :mod:`jahs_gym.bundle_trust`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

from jahs_gym.bundle_trust import BundleError, check_listing, file_sha256, inside, parse_json
from jahs_gym.manifest import _SELF, Manifest, _migrate

MAX_MANIFEST_BYTES = 4 << 20  # a manifest.json over this is refused before it is parsed (the shipped: ~26 KB)


def _canonical(manifest: Mapping) -> bytes:
    return json.dumps({k: v for k, v in manifest.items() if k != _SELF}, sort_keys=True).encode()


def write_manifest(folder: Path, manifest: Mapping | Manifest) -> Path:
    """Add the sha256 of every file in ``folder`` (except the manifest) and of the manifest itself.

    Args:
        folder: The bundle folder; ``manifest.json`` is written into it (atomically).
        manifest: The manifest (its ``files`` and digest are replaced).

    Returns:
        The path of the written manifest.json.
    """
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p != folder / "manifest.json")
    manifest = manifest.to_json() if isinstance(manifest, Manifest) else dict(manifest)
    manifest["files"] = {p.relative_to(folder).as_posix(): file_sha256(p) for p in files}
    manifest[_SELF] = hashlib.sha256(_canonical(manifest)).hexdigest()
    path = folder / "manifest.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, path)
    return path


def refit_hint(folder: Path) -> str:
    """What to do about a refused bundle (the end of every BundleError about it).

    Args:
        folder: The bundle folder.

    Returns:
        The hint.
    """
    return (f"reinstall jahs-gym (pip install --force-reinstall jahs-gym) or refit the bundle with "
            f"`python -m generation fit TABLE -o {folder}`")


def read_manifest(folder: Path | str, verify_files: bool = True) -> Manifest:
    """Read and verify a bundle's manifest; raise :class:`BundleError` naming the first problem.

    Args:
        folder: The bundle folder.
        verify_files: Also check the listing and every listed file's sha256 (False: the manifest only).

    Returns:
        The checked manifest.

    Raises:
        BundleError: No manifest, or one that is too large, not valid, modified, of another format or encoding,
            or of another task than its folder's name; with ``verify_files``, an unlisted, missing or corrupted file.
    """
    from jahs_gym.protocol import TASKS
    from jahs_gym.space import ENCODING, FEATURES

    folder = Path(folder)
    path = folder / "manifest.json"
    fix = refit_hint(folder)
    if not path.exists():
        raise BundleError(f"{folder} is not a bundle: manifest.json is missing; {fix}")
    why = inside(folder.resolve(), "manifest.json")
    if why or not path.is_file():
        raise BundleError(f"{path} is not a regular file inside the bundle folder ({why or 'a folder or device'}); "
                          f"{fix}")
    size = path.stat().st_size
    if size > MAX_MANIFEST_BYTES:
        raise BundleError(f"{path} is {size} bytes, over the {MAX_MANIFEST_BYTES} a manifest may have; {fix}")
    with open(path, "rb") as fh:
        data = parse_json(fh.read(MAX_MANIFEST_BYTES + 1), path, MAX_MANIFEST_BYTES, fix)  # +1: grew since stat
    try:
        _migrate(data, str(path))
    except BundleError as e:
        raise BundleError(f"{e}; {fix}") from None
    if data.get(_SELF) != hashlib.sha256(_canonical(data)).hexdigest():
        raise BundleError(f"{path} was modified after it was written (its {_SELF} does not match); {fix}")
    enc = data.get("encoding")  # another encoding first: the refit is the fix, whatever else differs
    if isinstance(enc, dict) and (enc.get("name") != ENCODING or enc.get("features") != list(FEATURES)):
        if (folder / "table.parquet").exists():  # the bundle ships its table: refit from it
            fix = (f"refit it from its own table: `python -m generation fit {folder / 'table.parquet'} "
                   f"-o {folder}-refit --ship-table`, then use {folder}-refit")
        raise BundleError(f"{path}: encoding {enc.get('name')!r} differs from this jahs-gym's {ENCODING!r}; {fix}")
    m = Manifest.from_json(data, folder)
    name = folder.resolve().name
    if name in TASKS and m.task != name:  # would answer for another task under this one's name
        raise BundleError(f"{folder} holds a bundle of task {m.task!r}; allowed: a folder named after a task "
                          f"({list(TASKS)}) holds that task's bundle (rename the folder, e.g. {m.task}_mine)")
    if verify_files:
        check_listing(folder, m.files, fix)
        for rel, digest in m.files.items():
            f = folder / rel
            if not f.is_file():
                raise BundleError(f"{folder}: file {rel} listed in the manifest is missing (or not a file); {fix}")
            if file_sha256(f) != digest:
                raise BundleError(f"{folder}: file {rel} is corrupted (sha256 mismatch); {fix}")
        if m.table.file and file_sha256(folder / m.table.file) != m.table.sha256:
            raise BundleError(f"{folder}: {m.table.file} is not the table the bundle was fitted on; {fix}")
    return m
