"""The space as ``ConfigSpace`` objects for SMAC3, DEHB, NePS, Optuna-via-ConfigSpace and JAHS-Bench-201 code.

Needs ``pip install 'jahs-gym[configspace]'``. Three spaces, every hyperparameter named as in JAHS-Bench-201:

- :func:`joint_config_space`: JAHS-Bench-201's ``joint_config_space`` (14 hyperparameters: N, W, Op1..Op6,
  Resolution, TrivialAugment, Activation, Optimizer, LearningRate, WeightDecay, added in that order with the
  original's choices and defaults; ConfigSpace >= 1.0 lists them by name). One deliberate difference: Optimizer,
  a single-choice categorical in the original, is a ``Constant`` (NePS refuses a one-choice categorical).
- :func:`fidelity_space`: the joint space plus ``epoch`` (ordinal 1..max epochs, default the max); N, W,
  Resolution and epoch are ordinals marked ``meta={"fidelity": True}`` (:func:`fidelities` lists them), so a
  multi-fidelity optimiser samples only whole epochs.
- :func:`search_space`: the 11 configuration hyperparameters without the fidelities.

Every sample of each is a valid ``Benchmark`` query as it is: ``bench(dict(cs.sample_configuration()))``.
"""

from __future__ import annotations

from typing import Any

from jahs_gym.space import ACTIVATIONS, LR_RANGE, N_VALUES, OP_KEYS, OPS, OPTIMIZERS, RESOLUTIONS, W_VALUES, WD_RANGE

JOINT_ORDER: tuple[str, ...] = ("N", "W", *OP_KEYS, "Resolution", "TrivialAugment", "Activation", "Optimizer",
                                "LearningRate", "WeightDecay")
FIDELITY_NAMES: tuple[str, ...] = ("N", "W", "Resolution", "epoch")


def _cs() -> Any:
    try:
        import ConfigSpace
    except ImportError as e:
        raise ImportError("jahs_gym.configspace needs ConfigSpace: pip install 'jahs-gym[configspace]'") from e
    return ConfigSpace


def _hyperparameters(with_fidelities: bool, max_epochs: int | None = None) -> list[Any]:
    cs = _cs()
    fid = {"fidelity": True}
    hps = []
    if with_fidelities:
        hps += [cs.OrdinalHyperparameter("N", list(N_VALUES), default_value=1,
                                         meta={**fid, "help": "cells per stage (depth multiplier)"}),
                cs.OrdinalHyperparameter("W", list(W_VALUES), default_value=4,
                                         meta={**fid, "help": "channels of the first stage (W, 2W, 4W)"})]
    hps += [cs.CategoricalHyperparameter(k, list(range(len(OPS))), default_value=0,
                                         meta={"help": f"operation on edge {i + 1} of the cell: index into {OPS}"})
            for i, k in enumerate(OP_KEYS)]
    if with_fidelities:
        hps.append(cs.OrdinalHyperparameter("Resolution", list(RESOLUTIONS), default_value=1.0,
                                            meta={**fid, "help": "fraction of the images' side length"}))
    hps += [cs.CategoricalHyperparameter("TrivialAugment", [True, False], default_value=False),
            cs.CategoricalHyperparameter("Activation", list(ACTIVATIONS), default_value="ReLU"),
            cs.Constant("Optimizer", OPTIMIZERS[0]),
            cs.UniformFloatHyperparameter("LearningRate", *LR_RANGE, default_value=0.1, log=True),
            cs.UniformFloatHyperparameter("WeightDecay", *WD_RANGE, default_value=5e-4, log=True)]
    if max_epochs is not None:
        hps.append(cs.OrdinalHyperparameter("epoch", list(range(1, max_epochs + 1)), default_value=max_epochs,
                                            meta={**fid, "help": "epochs trained"}))
    return hps


def joint_config_space(seed: int | None = None, name: str = "jahs_bench_config_space") -> Any:
    """JAHS-Bench-201's joint space: 14 hyperparameters, the original's names, choices, order and defaults.

    Args:
        seed: The space's sampling seed.
        name: The space's name.

    Returns:
        A ``ConfigSpace.ConfigurationSpace`` (needs ConfigSpace).
    """
    space = _cs().ConfigurationSpace(name=name, seed=seed)
    space.add(_hyperparameters(True))
    return space


def fidelity_space(max_epochs: int = 10, seed: int | None = None) -> Any:
    """The joint space plus the ordinal ``epoch`` 1..``max_epochs``; N, W, Resolution and epoch are fidelities.

    Args:
        max_epochs: The task's max epoch count (``Benchmark(task).max_epochs``).
        seed: The space's sampling seed.

    Returns:
        A ``ConfigSpace.ConfigurationSpace``.

    Raises:
        ValueError: ``max_epochs`` is not an integer >= 1.
    """
    if isinstance(max_epochs, bool) or not isinstance(max_epochs, int) or max_epochs < 1:
        raise ValueError(f"max_epochs={max_epochs!r} must be an integer >= 1 (a task's protocol: "
                         "Benchmark(task).max_epochs)")
    space = _cs().ConfigurationSpace(name="jahs_gym_fidelity_space", seed=seed)
    space.add(_hyperparameters(True, max_epochs))
    return space


def search_space(seed: int | None = None) -> Any:
    """The 11 configuration hyperparameters (no N, W, Resolution, epoch): ``Config.from_dict`` takes a sample.

    Args:
        seed: The space's sampling seed.

    Returns:
        A ``ConfigSpace.ConfigurationSpace``.
    """
    space = _cs().ConfigurationSpace(name="jahs_gym_search_space", seed=seed)
    space.add(_hyperparameters(False))
    return space


def fidelities(space: Any) -> list[str]:
    """The names of ``space``'s hyperparameters marked as fidelities (N, W, Resolution, epoch where present).

    Args:
        space: A space of this module.

    Returns:
        The names, in the space's order.
    """
    return [k for k, hp in space.items() if (hp.meta or {}).get("fidelity")]

