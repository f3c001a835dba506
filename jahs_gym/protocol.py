"""The data protocol of a task: which images, how many epochs. Written into every bundle's manifest."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

NATIVE_PX: dict[str, int] = {"fashion_mnist": 28, "mnist": 28, "cifar10": 32, "colorectal_histology": 32}
CHANNELS: dict[str, int] = {"fashion_mnist": 1, "mnist": 1, "cifar10": 3, "colorectal_histology": 3}
N_CLASSES: dict[str, int] = {"fashion_mnist": 10, "mnist": 10, "cifar10": 10, "colorectal_histology": 8}
TASKS: tuple[str, ...] = tuple(NATIVE_PX)


@dataclass(frozen=True)
class Protocol:
    """Subset sizes and epochs. ``n_train=None`` means all training images (the full JAHS protocol).

    The validation split is carved from the official training split with ``split_seed`` (stratified);
    the test split is the official test split, or a stratified subset of it of size ``n_test``.
    """

    task: str
    n_train: int | None = None
    n_valid: int = 10_000
    n_test: int | None = None
    max_epochs: int = 200
    split_seed: int = 0
    batch_size: int = 256

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"Protocol: task={self.task!r} is unknown; allowed: {list(TASKS)}")
        for k in ("n_train", "n_test"):
            v = getattr(self, k)
            if v is not None and (not isinstance(v, int) or v < 10):
                raise ValueError(f"Protocol: {k}={v!r} must be None (all) or an integer >= 10")
        if not isinstance(self.n_valid, int) or self.n_valid < 10:
            raise ValueError(f"Protocol: n_valid={self.n_valid!r} must be an integer >= 10")
        if not isinstance(self.max_epochs, int) or self.max_epochs < 1:
            raise ValueError(f"Protocol: max_epochs={self.max_epochs!r} must be an integer >= 1")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"Protocol: batch_size={self.batch_size!r} must be an integer >= 1")

    @property
    def native_px(self) -> int:
        """The task's native image side in pixels (28 for the MNISTs, 32 for the others)."""
        return NATIVE_PX[self.task]

    def pixels(self, resolution: float) -> int:
        """The image side a fidelity trains at.

        Args:
            resolution: The fidelity's Resolution (0.25, 0.5, 1.0).

        Returns:
            ``round(native_px * resolution)``, at least 4 pixels.
        """
        return max(4, round(self.native_px * resolution))

    def as_dict(self) -> dict[str, Any]:
        """The protocol as a JSON-ready dict (what plans and manifests store).

        Returns:
            Every field by name.
        """
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Protocol:
        """The protocol a plan or manifest stored.

        Args:
            data: Field names to values, as :meth:`as_dict` wrote them.

        Returns:
            The validated protocol.

        Raises:
            ValueError: An unknown key (naming it and the allowed ones), or a value the fields do not allow.
        """
        allowed = [f.name for f in fields(cls)]
        unknown = [k for k in data if k not in allowed]
        if unknown:
            raise ValueError(f"Protocol: unknown key(s) {unknown}; allowed: {allowed}")
        return cls(**data)
