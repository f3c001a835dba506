"""The leaderboard statistics on result frames whose answer is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from agents.stats import average_ranks, beats, final_regrets, holm, pairwise, top_group, wilcoxon_signed_rank


def test_wilcoxon_exact_small_cases() -> None:
    # all 5 differences positive: W+ = 15, the most extreme of 2^5 sign patterns on each side: p = 2/32
    assert wilcoxon_signed_rank(np.array([1.0, 2, 3, 4, 5])) == (15.0, 0.0625)
    # zeros are dropped; nothing left: no evidence
    assert wilcoxon_signed_rank(np.zeros(4)) == (0.0, 1.0)
    # symmetric differences: W+ is the middle of the distribution, p = 1
    assert wilcoxon_signed_rank(np.array([-1.0, 1.0]))[1] == 1.0
    # ties share mean ranks: |d| = (1, 1, 2) -> ranks (1.5, 1.5, 3); all positive: W+ = 6, p = 2/8
    assert wilcoxon_signed_rank(np.array([1.0, 1.0, 2.0])) == (6.0, 0.25)


def test_wilcoxon_matches_scipy_without_ties() -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    for n in (6, 13, 30):
        d = rng.normal(0.4, 1.0, n)
        w, p = wilcoxon_signed_rank(d)
        ref = scipy_stats.wilcoxon(d, method="exact")
        assert p == pytest.approx(ref.pvalue, abs=1e-12)
        assert min(w, n * (n + 1) / 2 - w) == pytest.approx(ref.statistic)


def test_holm() -> None:
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([]) == []


def _frame(final: dict[str, list[float]]) -> pd.DataFrame:
    """A harness result frame with two evaluations per episode whose last regret is ``final``."""
    rows = []
    for agent, values in final.items():
        for seed, v in enumerate(values):
            rows.append({"agent": agent, "seed": seed, "step": 1, "regret": v + 10.0})
            rows.append({"agent": agent, "seed": seed, "step": 2, "regret": v})
    return pd.DataFrame(rows)


def test_leaderboard_statistics_on_a_known_frame() -> None:
    seeds = 30
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 0.1, seeds)
    final = {"good": list(1.0 + noise), "same": list(1.0 + noise[::-1]), "bad": list(3.0 + noise),
             "worst": list(5.0 + rng.normal(0, 0.1, seeds))}
    df = _frame(final)
    fr = final_regrets(df)
    assert fr.shape == (seeds, 4) and fr.loc[0, "good"] == pytest.approx(final["good"][0])
    pairs = pairwise(fr)
    sig = {(r.a, r.b): r.significant for r in pairs.itertuples()}
    # good vs bad: 30 of 30 seeds favour good -> p = 2 / 2^30, far below 0.05 after Holm over 6 pairs
    assert sig[("bad", "good")] and sig[("good", "worst")] and sig[("bad", "worst")]
    # good vs same: the same values in another order; no consistent sign
    assert not sig[("good", "same")]
    wins = beats(pairs)
    assert set(wins["good"]) == {"bad", "worst"} and set(wins["bad"]) == {"worst"} and "worst" not in wins
    ranks = average_ranks(fr)
    assert ranks["good"] + ranks["same"] == pytest.approx(3.0) and ranks["bad"] == 3.0 and ranks["worst"] == 4.0
    board = pd.DataFrame({"m": fr.mean()}).sort_values("m")
    assert top_group(board, pairs) == {"good", "same"}


def test_pairs_use_only_shared_seeds() -> None:
    df = _frame({"a": [1.0] * 10, "b": [2.0] * 30})
    pairs = pairwise(final_regrets(df))
    assert pairs.loc[0, "seeds"] == 10 and pairs.loc[0, "mean_diff"] == pytest.approx(-1.0)
    # 10 of 10 favour a: exact p = 2 / 1024
    assert pairs.loc[0, "p"] == pytest.approx(2 / 1024)


def test_the_winner_is_the_direction_the_ranks_and_the_mean_agree_on() -> None:
    """A lower on 14 of 15 seeds but one huge loss: the ranks say A, the mean says B; no winner is declared."""
    df = _frame({"A": [0.0] * 14 + [100.0], "B": [1.0] * 14 + [0.0]})
    pairs = pairwise(final_regrets(df))
    assert pairs.loc[0, "p"] < 0.05 and pairs.loc[0, "lower"] == "" and not pairs.loc[0, "significant"]
    assert beats(pairs) == {}


def test_wilcoxon_stays_a_probability_for_many_seeds() -> None:
    rng = np.random.default_rng(0)
    for n in (1030,):  # past n ~ 1,000, where counts (2^n) would overflow a float
        _, p = wilcoxon_signed_rank(rng.normal(0.3, 1.0, n))
        assert 0.0 < p < 1e-6  # a clear effect over 1,000+ seeds: tiny, but a probability
        _, p0 = wilcoxon_signed_rank(rng.normal(0.0, 1.0, n))
        assert 0.0 < p0 <= 1.0
