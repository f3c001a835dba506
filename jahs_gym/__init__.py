"""jahs-gym: joint architecture and hyperparameter search as a Gymnasium problem."""

from __future__ import annotations

__version__ = "0.1.0"
