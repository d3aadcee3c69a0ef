"""Accuracy and its interval from scored traces."""

import pytest

from neuromas.eval import reward_interval, summarize, wilson_interval
from neuromas.trace import Trace


def traces(rewards):
    return [Trace(str(i), "q", 0, {}, "a", reward=r) for i, r in enumerate(rewards)]


def test_fractional_rewards_count_as_they_are_not_rounded():
    result = summarize("t", "test", traces([0.5, 0.5, 0.5]), 1, 0.0)
    assert result.correct == 1.5 and result.acc == 0.5
    # Wilson's interval of p = 0.5 is symmetric about it (round(1.5) = 2 would centre it near 2/3)
    assert (result.ci_low + result.ci_high) / 2 == pytest.approx(0.5)
    assert (result.ci_low, result.ci_high) == wilson_interval(1.5, 3)


def test_binary_rewards_get_wilson_and_others_the_normal_interval():
    assert reward_interval([1.0, 0.0, 1.0, 1.0]) == wilson_interval(3, 4)
    low, high = reward_interval([2.0, 0.0, 2.0, 0.0])  # a custom reward outside [0, 1]: mean 1, sd 2/sqrt(3)
    half = 1.959964 * (2 / 3**0.5) / 2
    assert (low, high) == pytest.approx((1 - half, 1 + half))
    assert reward_interval([]) == (0.0, 1.0)
