"""REINFORCE, the NAS-Bench-201 controller (Dong & Yang, 2020; Williams, 1992), on the joint JAHS space.

As in NAS-Bench-201's ``exps/NAS-Bench-201-algos/reinforce.py``: a policy of independent categorical
distributions, logits initialised at 1e-3 * N(0, 1), one sample per step, reward = validation accuracy (%),
an exponential moving average of the rewards as the baseline (momentum 0.9, updated before the advantage is
taken), and Adam at learning rate 1e-3 on ``-log p(a) * (reward - baseline)``. NAS-Bench-201's policy covers
the 6 edges x 5 ops; here it also covers Activation, TrivialAugment and the two real hyperparameters, each
discretised into ``n_lr`` / ``n_wd`` log-spaced values (the env's grid). Every evaluation is at full fidelity
(N=5, W=16, Resolution=1, the task's max epochs), like the JAHS-Bench-201 paper's single-fidelity baselines.
The gradient of a categorical's log-probability is ``onehot(a) - softmax(logits)``, so numpy is enough.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.common import FULL
from agents.objective import EnvObjective, Objective
from jahs_gym.space import ACTIVATIONS, LR_RANGE, OPS, WD_RANGE, Config


@dataclass
class Args:
    """REINFORCE's settings (NAS-Bench-201's defaults).

    Attributes:
        learning_rate: Adam's step size.
        ema_momentum: The baseline's momentum.
        init_std: Logits start at ``init_std * N(0, 1)``.
        n_lr: LearningRate values, log-spaced over its range.
        n_wd: WeightDecay values, log-spaced over its range.
    """

    learning_rate: float = 1e-3  # Adam's step size (NAS-Bench-201: --learning_rate 0.001)
    ema_momentum: float = 0.9  # the baseline's momentum (NAS-Bench-201: --EMA_momentum 0.9)
    init_std: float = 1e-3  # logits start at init_std * N(0, 1)
    n_lr: int = 8  # LearningRate values, log-spaced over its range
    n_wd: int = 8  # WeightDecay values, log-spaced over its range


class Adam:
    """Adam (Kingma & Ba, 2015) on one parameter array, as torch.optim.Adam's defaults.

    Args:
        shape: The parameter array's shape.
        lr: The step size.
        b1: The first moment's decay.
        b2: The second moment's decay.
        eps: Added to the denominator.
    """

    def __init__(self, shape: tuple[int, ...], lr: float, b1: float = 0.9, b2: float = 0.999,
                 eps: float = 1e-8) -> None:
        self.lr, self.b1, self.b2, self.eps = lr, b1, b2, eps
        self.m, self.v, self.t = np.zeros(shape), np.zeros(shape), 0

    def step(self, params: np.ndarray, grad: np.ndarray) -> None:
        """One descent step, in place.

        Args:
            params: The parameters (updated in place).
            grad: Their gradient.
        """
        self.t += 1
        self.m = self.b1 * self.m + (1 - self.b1) * grad
        self.v = self.b2 * self.v + (1 - self.b2) * grad**2
        m_hat, v_hat = self.m / (1 - self.b1**self.t), self.v / (1 - self.b2**self.t)
        params -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


class EMA:
    """NAS-Bench-201's ExponentialMovingAverage (bias-corrected by its running denominator).

    Args:
        momentum: The weight of the past.
    """

    def __init__(self, momentum: float) -> None:
        self.momentum, self.num, self.den = momentum, 0.0, 0.0

    def update(self, x: float) -> None:
        """Add one value.

        Args:
            x: The value.
        """
        self.num = self.momentum * self.num + (1 - self.momentum) * x
        self.den = self.momentum * self.den + (1 - self.momentum)

    def value(self) -> float:
        """The bias-corrected average (call :meth:`update` first).

        Returns:
            The average.
        """
        return self.num / self.den


class Reinforce:
    """The REINFORCE controller at full fidelity and the task's max epochs.

    Args:
        args: Its settings (None: :class:`Args`'s defaults).
    """

    name = "reinforce"
    action_type = "dict"

    def __init__(self, args: Args | None = None) -> None:
        self.args = args or Args()
        a = self.args
        self.lrs = np.geomspace(*LR_RANGE, a.n_lr)
        self.wds = np.geomspace(*WD_RANGE, a.n_wd)
        # the policy's decisions: 6 edges (5 ops each), Activation, TrivialAugment, LearningRate, WeightDecay
        self.sizes = [len(OPS)] * 6 + [len(ACTIVATIONS), 2, a.n_lr, a.n_wd]

    def config(self, actions: list[int]) -> Config:
        """The config of the policy's decisions.

        Args:
            actions: 10 indices: 6 ops, Activation, TrivialAugment, LearningRate and WeightDecay grid values.

        Returns:
            The config.
        """
        ops, (act, ta, lr, wd) = actions[:6], actions[6:]
        return Config(*ops, Activation=ACTIVATIONS[act], TrivialAugment=bool(ta), LearningRate=float(self.lrs[lr]),
                      WeightDecay=float(self.wds[wd]))

    def search(self, objective: Objective, rng: np.random.Generator) -> None:
        """Sample, evaluate and update the policy until ``objective`` answers None.

        Args:
            objective: An :class:`agents.objective.EnvObjective` or :class:`agents.objective.BenchmarkObjective`.
            rng: The agent's random generator.
        """
        logits = [self.args.init_std * rng.standard_normal(k) for k in self.sizes]
        opts = [Adam(lg.shape, self.args.learning_rate) for lg in logits]
        baseline = EMA(self.args.ema_momentum)
        while True:
            probs = [np.exp(lg - lg.max()) / np.exp(lg - lg.max()).sum() for lg in logits]
            actions = [int(rng.choice(len(p), p=p)) for p in probs]
            reward = objective(self.config(actions), FULL, None)
            if reward is None:
                return
            baseline.update(reward)
            advantage = reward - baseline.value()
            for lg, p, a, opt in zip(logits, probs, actions, opts):
                grad = -advantage * (np.eye(len(p))[a] - p)  # d/dlogits of -log p(a) * advantage
                opt.step(lg, grad)

    def run(self, env: Any, rng: np.random.Generator) -> None:
        """Search on a JAHS-v0 episode.

        Args:
            env: The recorded episode (``dict`` actions).
            rng: The agent's random generator.
        """
        self.search(EnvObjective(env), rng)
