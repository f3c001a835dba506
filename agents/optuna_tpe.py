"""Optuna's TPE sampler (the peer most researchers reach for) at full fidelity. Needs ``jahs-gym[optuna]``."""

from __future__ import annotations

import numpy as np

from agents.common import FULL, Recorder, evaluate, max_epoch_index
from jahs_gym.space import ACTIVATIONS, LR_RANGE, OP_KEYS, OPS, WD_RANGE, Config


class OptunaTPE:
    name = "optuna_tpe"
    action_type = "dict"

    def run(self, env: Recorder, rng: np.random.Generator) -> None:
        try:
            import optuna
        except ImportError as e:
            raise ImportError("the optuna_tpe agent needs Optuna: pip install 'jahs-gym[optuna]'") from e
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(direction="maximize",
                                    sampler=optuna.samplers.TPESampler(seed=int(rng.integers(2**31))))
        top = max_epoch_index(env)
        while True:
            trial = study.ask()
            cfg = Config(*(trial.suggest_categorical(k, list(range(len(OPS)))) for k in OP_KEYS),
                         Activation=trial.suggest_categorical("Activation", list(ACTIVATIONS)),
                         TrivialAugment=trial.suggest_categorical("TrivialAugment", [False, True]),
                         LearningRate=trial.suggest_float("LearningRate", *LR_RANGE, log=True),
                         WeightDecay=trial.suggest_float("WeightDecay", *WD_RANGE, log=True))
            acc = evaluate(env, cfg, FULL, top)
            if acc is None:
                return
            study.tell(trial, acc)
