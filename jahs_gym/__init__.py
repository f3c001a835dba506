"""jahs-gym: joint architecture and hyperparameter search as a Gymnasium problem."""

from __future__ import annotations

__version__ = "0.1.0"

from jahs_gym.benchmark import Benchmark  # noqa: E402
from jahs_gym.space import Config, Fidelity, SpaceError  # noqa: E402

__all__ = ["Benchmark", "Config", "Fidelity", "SpaceError", "__version__"]
