"""The harness refuses bad arguments up front, and loads only RL policies it signed for exactly its settings."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import pickle
import zipfile
from pathlib import Path

import pytest

from agents.bench import main, rl_args
from agents.common import Protocol

BAD_ARGS = [
    (["--agents", ""], "''"), (["--agents", " , "], "' , '"), (["--agents", "random,,ucb"], "random,,ucb"),
    (["--agents", "random,random"], "random,random"), (["--agents", "alphazero"], "alphazero"),
    (["--agents", "RANDOM"], "RANDOM"),
    (["--seeds", "0"], "'0'"), (["--seeds", "-2"], "'-2'"), (["--seeds", "1.5"], "'1.5'"), (["--seeds", "x"], "'x'"),
    (["--first-seed", "-1"], "'-1'"), (["--first-seed", "one"], "'one'"),
    (["--budget", "-5"], "'-5'"), (["--budget", "0"], "'0'"), (["--budget", "nan"], "'nan'"),
    (["--budget", "inf"], "'inf'"), (["--budget", "1e400"], "'1e400'"), (["--budget", "abc"], "'abc'"),
    (["--max-steps", "0"], "'0'"), (["--max-steps", "-1"], "'-1'"), (["--workers", "0"], "'0'"),
    (["--rl-timesteps", "0"], "'0'"), (["--rl-timesteps", "-3"], "'-3'"),
    (["--protocol", "bogus"], "bogus"), (["--backend", "bogus"], "bogus"),
    (["--protocol", "jahs", "--budget", "3"], "--protocol jahs"),
    (["--backend", "table", "--agents", "ppo"], "ppo"),
    (["--task", "nope"], "nope"),
]


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse: "error: argument --seeds: '0' is not allowed; allowed: ..."
        rc = e.code
    return rc, capsys.readouterr().err


@pytest.mark.parametrize(("bad", "named"), BAD_ARGS, ids=[" ".join(b) for b, _ in BAD_ARGS])
def test_the_harness_refuses_a_bad_argument_in_one_line(tiny_data_env: str, tmp_path: Path, bad: list[str],
                                                        named: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    argv = ["--task", tiny_data_env, "--agents", "random", "--seeds", "1", "--budget", "1", "--out", str(out)]
    for i in range(0, len(bad), 2):  # the bad value replaces the good one
        if bad[i] in argv:
            argv[argv.index(bad[i]) + 1] = bad[i + 1]
        else:
            argv += bad[i:i + 2]
    rc, err = _run(argv, capsys)
    last = err.strip().splitlines()[-1]
    assert rc == 2 and named in last and any(w in last for w in ("allowed", "installed", "choose from")), err
    assert "Traceback" not in err and not out.exists()  # refused in the parent, before anything ran


@pytest.mark.parametrize("flag", ["--out", "--policy-dir"])
def test_a_file_where_a_folder_goes_is_refused(tiny_data_env: str, tmp_path: Path, flag: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "a_file"
    f.write_text("x")
    argv = ["--task", tiny_data_env, "--agents", "random", "--seeds", "1", "--budget", "1",
            "--out", str(tmp_path / "out"), flag, str(f)]
    rc, err = _run(argv, capsys)
    assert rc == 2 and f"{flag} {f} is a file" in err and f.read_text() == "x"


@pytest.mark.parametrize("bad", [["--total-timesteps", "0"], ["--algo", "sac"], ["--n-envs", "0"],
                                 ["--seed", "-1"], ["--budget", "nan"], ["--max-steps", "0"]])
def test_train_rl_refuses_bad_arguments(bad: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from agents.train_rl import parse

    with pytest.raises(SystemExit) as e:
        parse(bad)
    assert e.value.code == 2 and f"{bad[1]!r} is not allowed" in capsys.readouterr().err


# ---- RL policies: signed stamps ------------------------------------------------------------------------------

@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The harness's own folder (key and policies), isolated per test."""
    monkeypatch.setenv("JAHS_GYM_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _planted_zip(path: Path, marker: Path) -> None:
    """An SB3-shaped zip whose ``data`` holds a pickle that makes the folder ``marker`` when unpickled."""

    class Payload:
        def __reduce__(self) -> tuple:
            return os.mkdir, (str(marker),)

    blob = base64.b64encode(pickle.dumps(Payload())).decode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("data", json.dumps({"policy_class": {":type:": "x", ":serialized:": blob}}))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())


def test_a_planted_policy_with_a_matching_stamp_is_never_unpickled(tiny_data_env: str, cache: Path,
                                                                   tmp_path: Path) -> None:
    pytest.importorskip("stable_baselines3")
    import hashlib

    import stable_baselines3 as sb3

    from agents import policies
    from agents.train_rl import policy_file, policy_settings

    # the payload is live: SB3 itself runs it when it loads the zip
    control, control_marker = tmp_path / "control.zip", tmp_path / "ran_control"
    _planted_zip(control, control_marker)
    with contextlib.suppress(Exception):  # the payload ran first; the rest of the zip is not a model
        sb3.PPO.load(control, device="cpu")
    assert control_marker.exists()

    # the same zip at the very path the harness uses, with a stamp of exactly its settings and the zip's sha256
    args = rl_args("ppo", Protocol(task=tiny_data_env, budget=3.0, max_steps=30), None, 64)
    s, path, marker = policy_settings(args), policy_file(args), tmp_path / "ran_planted"
    assert cache in path.parents  # the harness's own folder, not the current one
    _planted_zip(path, marker)
    body = {"settings": s, "zip_sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    for forged in ("0" * 64, hashlib.sha256(json.dumps(body).encode()).hexdigest(), None):
        path.with_suffix(".json").write_text(json.dumps({**body, "hmac": forged}))
        assert "HMAC does not verify" in policies.stale(path, s)
        with pytest.raises(policies.PolicyError, match="did not write it"):
            policies.load(path, s)
    assert not marker.exists()


def test_a_swapped_zip_under_a_genuine_stamp_is_refused(tiny_data_env: str, cache: Path, tmp_path: Path) -> None:
    pytest.importorskip("stable_baselines3")
    from agents import policies
    from agents.bench import train_policies
    from agents.train_rl import policy_file, policy_settings

    proto = Protocol(task=tiny_data_env, budget=3.0, max_steps=30)
    train_policies(["a2c"], proto, None, 20)
    args = rl_args("a2c", proto, None, 20)
    path, s = policy_file(args), policy_settings(args)
    assert policies.stale(path, s) is None and policies.load(path, s) is not None
    marker = tmp_path / "ran"
    _planted_zip(path, marker)  # the harness's signed stamp stays; only the zip is replaced
    assert "sha256 is not the stamped one" in policies.stale(path, s)
    with pytest.raises(policies.PolicyError):
        policies.load(path, s)
    assert not marker.exists()


def test_a_policy_for_other_settings_is_trained_again(tiny_data_env: str, cache: Path) -> None:
    """--rl-timesteps 20 must not serve a 40-step run (the stamp holds total_timesteps and every other setting)."""
    pytest.importorskip("stable_baselines3")
    import shutil

    from agents import policies
    from agents.bench import train_policies
    from agents.train_rl import policy_file, policy_settings

    proto = Protocol(task=tiny_data_env, budget=3.0, max_steps=30)
    short, long = rl_args("a2c", proto, None, 20), rl_args("a2c", proto, None, 40)
    train_policies(["a2c"], proto, None, 20)
    s20, s40 = policy_settings(short), policy_settings(long)
    assert s20["total_timesteps"] == 20 and s20["env"]["budget"] == 3.0 and s20["env"]["max_steps"] == 30
    assert {"seed", "model", "n_envs", "bundle_digest", "table_sha256", "versions"} <= set(s20)
    assert set(s20["env"]) >= {"reward", "cost_weight", "n_lr", "n_wd", "n_epochs", "observation_type"}
    # the short policy copied to where the long one goes: its genuine stamp names the difference
    shutil.copy(policy_file(short), policy_file(long))
    shutil.copy(policy_file(short).with_suffix(".json"), policy_file(long).with_suffix(".json"))
    assert "total_timesteps 20 != 40" in policies.stale(policy_file(long), s40)
    before = policy_file(short).stat().st_mtime_ns
    train_policies(["a2c"], proto, None, 40)  # retrains the long one ...
    assert policies.stale(policy_file(long), s40) is None
    assert json.loads(policy_file(long).with_suffix(".json").read_text())["settings"]["total_timesteps"] == 40
    train_policies(["a2c"], proto, None, 20)  # ... and reuses the short one as it is
    assert policy_file(short).stat().st_mtime_ns == before
    other = Protocol(task=tiny_data_env, budget=3.0, max_steps=30, noise=True)
    assert policy_file(rl_args("a2c", other, None, 20)) != policy_file(short)  # env settings are in the stamp


def test_a_key_file_others_can_read_is_refused(cache: Path) -> None:
    from agents import policies

    first = policies.user_key()  # made on first use
    key = cache / policies.KEY_FILE
    assert key.stat().st_mode & 0o777 == 0o600 and len(first) == 32 and policies.user_key() == first
    key.chmod(0o644)
    with pytest.raises(policies.PolicyError, match="mode 0o644"):
        policies.user_key()
