"""What JAHS-v0 shows: a line of text (``"ansi"``) or a small RGB frame drawn with numpy (``"rgb_array"``)."""

from __future__ import annotations

from typing import Any

import numpy as np

HEIGHT, WIDTH, MARGIN = 96, 160, 8
_BG, _AXIS, _CURVE, _DOT = (255, 255, 255), (80, 80, 80), (31, 119, 180), (214, 39, 40)


def text(history: list, steps: int, budget: float, over: bool) -> str:
    """The ``"ansi"`` rendering: one line about the last step of an episode.

    Args:
        history: ``(cumulative_cost, incumbent_valid_acc, valid_acc, cost)`` per revealed evaluation.
        steps: Steps taken.
        budget: The episode's budget in simulated seconds.
        over: Whether the last step went over the budget.

    Returns:
        The line, e.g. ``step 1: valid 44.53% cost 5.4s budget 5/1663s incumbent 44.53%``.
    """
    if over:
        return f"step {steps}: over budget, not revealed"
    if not history:
        return "reset"
    cum, inc, valid, cost = history[-1]
    return (f"step {steps}: valid {valid:.2f}% cost {cost:.1f}s budget {cum:.0f}/{budget:.0f}s "
            f"incumbent {inc:.2f}%")


def frame(history: list, budget: float) -> np.ndarray:
    """The ``"rgb_array"`` rendering, drawn with numpy.

    Args:
        history: ``(cumulative_cost, incumbent_valid_acc, valid_acc, cost)`` per revealed evaluation.
        budget: The episode's budget in simulated seconds.

    Returns:
        A (HEIGHT, WIDTH, 3) uint8 frame: the incumbent's validation accuracy (0-100 %, blue) against the budget
        spent (0-100 %), and the last evaluation's validation accuracy (red dot).
    """
    img = np.empty((HEIGHT, WIDTH, 3), dtype=np.uint8)
    img[:] = _BG
    x0, x1, y0, y1 = MARGIN, WIDTH - MARGIN, HEIGHT - MARGIN, MARGIN  # y0: the bottom row (0 %)
    img[y1:y0 + 1, x0] = _AXIS
    img[y0, x0:x1 + 1] = _AXIS

    def px(cum: float, acc: float) -> tuple[int, int]:
        x = x0 + int(round(min(max(cum / budget, 0.0), 1.0) * (x1 - x0)))
        y = y0 - int(round(min(max(acc / 100.0, 0.0), 1.0) * (y0 - y1)))
        return x, y

    prev = None
    for cum, inc, _valid, _cost in history:
        x, y = px(cum, inc)
        if prev is not None:  # a step curve: flat until this point, then up
            px0, py0 = prev
            img[py0, min(px0, x):max(px0, x) + 1] = _CURVE
            img[min(py0, y):max(py0, y) + 1, x] = _CURVE
        else:
            img[y, x] = _CURVE
        prev = (x, y)
    if history:
        cum, _inc, valid, _cost = history[-1]
        x, y = px(cum, valid)
        img[max(y - 1, 0):y + 2, max(x - 1, 0):x + 2] = _DOT
    return img


def render(mode: str | None, core: Any, i: int, over: bool) -> Any:
    """Episode ``i`` of an episode core (:class:`jahs_gym.envs.core.Episodes`) as ``mode`` asks.

    Args:
        mode: "ansi", "rgb_array" or None.
        core: The episode core.
        i: The episode.
        over: Whether its last evaluation went over the budget.

    Returns:
        :func:`text`, :func:`frame` or None.
    """
    if mode is None:
        return None
    budget = core.task(i).budget
    if mode == "ansi":
        steps = int(core.steps[i]) if core.vector else core.steps
        return text(core.history[i], steps, budget, over)
    return frame(core.history[i], budget)
