"""jahs-gym: joint architecture and hyperparameter search as a Gymnasium problem."""

from __future__ import annotations

__version__ = "0.1.0"

from gymnasium.envs.registration import register as _register  # noqa: E402

from jahs_gym.benchmark import Benchmark, BenchmarkTasks, BenchmarkTypes  # noqa: E402
from jahs_gym.space import Config, Fidelity, SpaceError  # noqa: E402

if "JAHS-v0" not in __import__("gymnasium").envs.registry:
    _register(id="JAHS-v0", entry_point="jahs_gym.envs:JAHSEnv", vector_entry_point="jahs_gym.envs:JAHSVectorEnv")

__all__ = ["Benchmark", "BenchmarkTasks", "BenchmarkTypes", "Config", "Fidelity", "SpaceError", "__version__"]
