"""Drop-in for code written against JAHS-Bench-201's ``jahs_bench`` package: change only the import.

==============================================================  ===============================================
JAHS-Bench-201                                                  jahs-gym
==============================================================  ===============================================
``import jahs_bench``                                           ``import jahs_gym.compat as jahs_bench``
``from jahs_bench.api import Benchmark``                        ``from jahs_gym.compat import Benchmark``
``from jahs_bench import BenchmarkTasks, BenchmarkTypes``       ``from jahs_gym.compat import BenchmarkTasks, ...``
``from jahs_bench.lib.core.configspace import                   ``from jahs_gym.compat import joint_config_space``
joint_config_space``
==============================================================  ===============================================

:class:`Benchmark` is :class:`jahs_gym.Benchmark` answering with the original's metric names (``valid-acc``,
``train-acc``, ``test-acc``; our losses likewise ``valid-loss``; ``runtime``, ``latency``, ``FLOPS``, ``size_MB``
and ``cpu_runtime`` are spelled alike), accepting both spellings in ``metrics=``. What differs from the original,
on purpose: ``download`` never fetches (the data is embedded or comes from ``python -m generation``); the tasks
train 10 epochs, not 200, so ``nepochs=200`` is refused with the task's protocol; a config's ``"epoch"`` key and
``nepochs`` must agree (the original let ``nepochs`` win silently); ``sample_config()``'s epoch is the task's max
(the original drew one at random and then overrode it); ``kind="live"`` is not wired here; ``Optimizer`` is a
ConfigSpace ``Constant``.
"""

from __future__ import annotations

import os
from typing import Any

from jahs_gym.benchmark import Benchmark as _Benchmark
from jahs_gym.benchmark import BenchmarkTasks, BenchmarkTypes

__all__ = ["Benchmark", "BenchmarkTasks", "BenchmarkTypes", "joint_config_space"]
joint_config_space: Any  # built on first use by __getattr__ below


class Benchmark(_Benchmark):
    """JAHS-Bench-201's ``Benchmark``: :class:`jahs_gym.Benchmark` with ``names="original"`` (``valid-acc``).

    Args:
        task: As :class:`jahs_gym.Benchmark` takes it.
        kind: As :class:`jahs_gym.Benchmark` takes it.
        download: As :class:`jahs_gym.Benchmark` takes it.
        save_dir: As :class:`jahs_gym.Benchmark` takes it.
        metrics: As :class:`jahs_gym.Benchmark` takes it.
        lazy: As :class:`jahs_gym.Benchmark` takes it.
        **kwargs: :class:`jahs_gym.Benchmark`'s keyword arguments (``names`` overrides the default "original").
    """

    def __init__(self, task: str | BenchmarkTasks | os.PathLike = "fashion_mnist",
                 kind: str | BenchmarkTypes = "surrogate", download: bool = False,
                 save_dir: str | os.PathLike | None = None, metrics: str | list[str] | None = None,
                 lazy: bool = False, **kwargs: Any) -> None:
        super().__init__(task, kind, download, save_dir, metrics, lazy, **{"names": "original", **kwargs})


_SPACE: list[Any] = []


def __getattr__(name: str) -> Any:
    """``joint_config_space``: one shared ConfigSpace object, built on first use (needs ConfigSpace)."""
    if name == "joint_config_space":
        if not _SPACE:
            from jahs_gym.configspace import joint_config_space

            _SPACE.append(joint_config_space())
        return _SPACE[0]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
