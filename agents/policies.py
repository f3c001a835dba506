"""Where the harness keeps its RL policies, what each was trained for, and the rule for loading one.

An SB3 policy zip holds cloudpickle: loading one runs whatever code its author put in it. So a zip is
loaded only when the harness itself wrote it, for exactly the settings asked for:

* every policy has a stamp (ALGO-DIGEST.json next to ALGO-DIGEST.zip) with every setting that shapes it:
  all env kwargs, the algorithm's hyperparameters, total_timesteps, seed, the bundle (manifest digest,
  table sha256), the package versions that matter, and the zip's sha256;
* the stamp carries an HMAC-SHA256 under a per-user secret key (``KEY_FILE`` in the cache folder, created
  with mode 0600; refused if another user owns it or others can read or write it);
* a zip is loaded only when the stamp's HMAC verifies, its settings equal the ones asked for exactly, and the
  sha256 of the bytes read equals the stamped one; SB3 then loads those same bytes from memory (nothing is
  re-read from disk between the check and the load).

Threat model: this stops a zip (with or without a stamp) planted by anyone who cannot read the user's key
file: a repository checkout, an unpacked archive, the current folder, a shared or world-writable folder.
It does not stop someone who can read the user's files (they can sign with the key) or write them (they can
change this code): they already run as the user. Policies live in the user's cache folder
(``$JAHS_GYM_CACHE`` or ``$XDG_CACHE_HOME/jahs-gym`` or ``~/.cache/jahs-gym``), never in the current folder.
"""

from __future__ import annotations

import hashlib
import hmac
import inspect
import io
import json
import os
import stat
from pathlib import Path
from typing import Any

KEY_FILE = "policy-hmac.key"
VERSIONED = ("stable-baselines3", "torch", "gymnasium", "numpy", "jahs-gym")


class PolicyError(ValueError):
    """A saved policy that must not be loaded (unsigned, altered, or for other settings)."""


def cache_dir() -> Path:
    """The harness's own folder.

    Returns:
        $JAHS_GYM_CACHE, else $XDG_CACHE_HOME/jahs-gym, else ~/.cache/jahs-gym (not created here).
    """
    if os.environ.get("JAHS_GYM_CACHE"):
        return Path(os.environ["JAHS_GYM_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "jahs-gym"


def default_policy_dir() -> Path:
    """Where the harness keeps its policies unless told otherwise.

    Returns:
        ``policies`` in :func:`cache_dir`.
    """
    return cache_dir() / "policies"


def user_key() -> bytes:
    """The per-user HMAC key (32 random bytes), created with mode 0600 on first use.

    Returns:
        The key.

    Raises:
        PolicyError: The key file is not a regular 32-byte file of this user that only the user can read and write
            (the message says to delete it).
    """
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = root / KEY_FILE
    if not path.exists():  # written whole under another name, then linked: a concurrent reader never sees half a key
        tmp = root / f".{KEY_FILE}.{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(os.urandom(32))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process made it first: use theirs
        finally:
            tmp.unlink()
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        key = f.read(64)
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077 or len(key) != 32:
        raise PolicyError(f"{path} is not a private key file of this user (mode {oct(st.st_mode & 0o777)}, owner "
                          f"uid {st.st_uid}, {len(key)} bytes; allowed: a 32-byte regular file with mode 0600 owned "
                          f"by uid {os.getuid()}); delete it (the harness makes a new one and retrains its policies)")
    return key


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in VERSIONED:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "absent"
    return out


def env_kwargs(protocol: Any, action_type: str) -> dict[str, Any]:
    """Every keyword of the training env: JAHSEnv's defaults with the protocol's settings over them.

    Args:
        protocol: The episodes' :class:`agents.common.Protocol` (or anything with its fields).
        action_type: The env's action type.

    Returns:
        Keyword -> value.
    """
    from jahs_gym.envs import JAHSEnv

    kw = {k: p.default for k, p in inspect.signature(JAHSEnv.__init__).parameters.items()
          if k != "self" and p.default is not inspect.Parameter.empty}
    kw.update(task=protocol.task, budget=protocol.budget, max_steps=protocol.max_steps, noise=protocol.noise,
              continuation=protocol.continuation, backend=protocol.backend, action_type=action_type)
    return kw


def settings(algo: str, env: dict[str, Any], model: dict[str, Any], n_envs: int, total_timesteps: int,
             seed: int) -> dict[str, Any]:
    """Everything that shapes a policy (the stamp without the zip's hash and the HMAC).

    Args:
        algo: ``"ppo"``, ``"a2c"`` or ``"dqn"``.
        env: The training env's keywords (:func:`env_kwargs`).
        model: The algorithm's hyperparameters.
        n_envs: Parallel training envs.
        total_timesteps: Training steps.
        seed: The training seed.

    Returns:
        The settings with the bundle's digests and the package versions, as a stamp reads back (tuples as lists).
    """
    from jahs_gym.bundle import load_bundle

    man = load_bundle(env["task"]).manifest
    s = {"algo": algo, "env": dict(env), "model": dict(model), "n_envs": int(n_envs),
         "total_timesteps": int(total_timesteps), "seed": int(seed), "bundle_digest": man.digest,
         "table_sha256": man.table.sha256, "versions": _versions()}
    return json.loads(_canonical(s))  # as a stamp reads back (tuples as lists)


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def digest(s: dict[str, Any]) -> str:
    """The sha256 of settings in canonical JSON.

    Args:
        s: Settings (:func:`settings`).

    Returns:
        The hex digest.
    """
    return hashlib.sha256(_canonical(s)).hexdigest()


def policy_path(folder: Path, s: dict[str, Any]) -> Path:
    """ALGO-DIGEST.zip: one file per setting, so runs with other settings never overwrite each other.

    Args:
        folder: The policy folder.
        s: Settings (:func:`settings`).

    Returns:
        The zip's path in ``folder``.
    """
    return Path(folder) / f"{s['algo']}-{digest(s)[:16]}.zip"


def _sign(body: dict[str, Any]) -> str:
    return hmac.new(user_key(), _canonical(body), hashlib.sha256).hexdigest()


def save(model: Any, folder: Path, s: dict[str, Any]) -> Path:
    """Save an SB3 model and its signed stamp; the zip is hashed from the bytes written.

    Args:
        model: The trained SB3 model.
        folder: The policy folder (created with mode 0700 if missing).
        s: The settings it was trained for (:func:`settings`).

    Returns:
        The zip's path (the stamp is next to it, ``.json``).
    """
    zip_path = policy_path(folder, s)
    zip_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    buf = io.BytesIO()
    model.save(buf)
    data = buf.getvalue()
    body = {"settings": s, "zip_sha256": hashlib.sha256(data).hexdigest()}
    tmp = zip_path.with_suffix(".zip.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, zip_path)
    stamp = zip_path.with_suffix(".json")
    stamp.with_suffix(".json.tmp").write_text(json.dumps({**body, "hmac": _sign(body)}, indent=1) + "\n")
    os.replace(stamp.with_suffix(".json.tmp"), stamp)
    return zip_path


def verified_bytes(zip_path: Path, s: dict[str, Any]) -> bytes:
    """The zip's bytes when its stamp is the harness's own for exactly ``s``.

    Args:
        zip_path: The policy zip.
        s: The settings asked for (:func:`settings`).

    Returns:
        The bytes read, whose sha256 is the stamped one.

    Raises:
        PolicyError: No zip, no readable stamp, a stamp the harness does not write, an HMAC that does not verify,
            other settings (naming the ones that differ), or a zip changed after it was saved.
    """
    zip_path = Path(zip_path)
    stamp = zip_path.with_suffix(".json")
    if not zip_path.is_file():
        raise PolicyError(f"no policy at {zip_path}")
    try:
        saved = json.loads(stamp.read_text())
    except (OSError, ValueError) as e:
        raise PolicyError(f"{stamp}: no readable stamp ({e})") from None
    if not isinstance(saved, dict) or set(saved) != {"settings", "zip_sha256", "hmac"}:
        raise PolicyError(f"{stamp}: not a stamp the harness writes (keys settings, zip_sha256, hmac)")
    body = {"settings": saved["settings"], "zip_sha256": saved["zip_sha256"]}
    if not isinstance(saved["hmac"], str) or not hmac.compare_digest(saved["hmac"], _sign(body)):
        raise PolicyError(f"{stamp}: its HMAC does not verify under this user's key: the harness did not write it")
    if saved["settings"] != s:
        diff = [f"{k} {saved['settings'].get(k)!r} != {v!r}" for k, v in s.items() if saved["settings"].get(k) != v]
        raise PolicyError(f"{zip_path} was trained for other settings: {'; '.join(diff) or 'other keys'}")
    data = zip_path.read_bytes()
    if hashlib.sha256(data).hexdigest() != saved["zip_sha256"]:
        raise PolicyError(f"{zip_path}: its sha256 is not the stamped one (the zip changed after it was saved)")
    return data


def stale(zip_path: Path, s: dict[str, Any]) -> str | None:
    """Why the policy at ``zip_path`` cannot serve ``s`` (then the harness trains it again).

    Args:
        zip_path: The policy zip.
        s: The settings asked for (:func:`settings`).

    Returns:
        The :class:`PolicyError` message, or None when the policy can be loaded.
    """
    try:
        verified_bytes(zip_path, s)
    except PolicyError as e:
        return str(e)
    return None


def load(zip_path: Path, s: dict[str, Any]) -> Any:
    """The SB3 model from the verified bytes (never from a path SB3 would open itself); :func:`verified_bytes`'s
    PolicyError when it must not be loaded.

    Args:
        zip_path: The policy zip.
        s: The settings asked for (:func:`settings`).

    Returns:
        The model, on the CPU.
    """
    import stable_baselines3 as sb3

    data = verified_bytes(zip_path, s)
    return getattr(sb3, s["algo"].upper()).load(io.BytesIO(data), device="cpu")
