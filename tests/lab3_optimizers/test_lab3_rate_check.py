"""check_fit_rate accepts tail fits written in several ways and rejects the usual mistakes, part by part."""
from __future__ import annotations

import math

import numpy as np
import pytest

from labs_utils import exercises
from labs_utils.lab3_optimizers.checks import GRADING, check_fit_rate
from labs_utils.lab3_optimizers.rate_check import CURVES

GEOMETRIC, TAIL, UNDERFLOW = CURVES


def second_half_fit(gaps):
    """The reference: a line through log(gap) over the second half of the positive gaps."""
    usable = gaps[gaps > 0]
    t = np.arange(len(usable))[len(usable) // 2:]
    return math.exp(np.polyfit(t, np.log(usable[t]), 1)[0] / 2)


def last_third_lstsq(gaps):
    """Correct, written differently: explicit least squares over the last third of the positive gaps."""
    logs = np.log(gaps[np.flatnonzero(gaps > 0)])
    tail = logs[2 * len(logs) // 3:]
    t = np.arange(len(tail)) - (len(tail) - 1) / 2
    return float(np.exp((t @ (tail - tail.mean())) / (t @ t) / 2))


def window_means(gaps):
    """Correct, written differently: the difference of mean log-gaps of two windows of the tail."""
    logs = np.log(gaps[gaps > 0])
    n = len(logs)
    a, b = logs[n // 2: 3 * n // 4], logs[3 * n // 4:]
    steps = (3 * n // 4 + n - 1) / 2 - (n // 2 + 3 * n // 4 - 1) / 2
    return math.exp((b.mean() - a.mean()) / steps / 2)


def verdicts(fn, seed=7):
    exercise = exercises.exercise_named(GRADING, "Convergence rate")
    return exercises.grade_here(exercise, (fn,), seed)


def failed(fn):
    return [part for part, message in verdicts(fn).items() if message is not None]


@pytest.mark.parametrize("fn", [second_half_fit, last_third_lstsq, window_means])
@pytest.mark.parametrize("seed", [0, 7, 123456])
def test_correct_fits_pass(fn, seed):
    assert all(message is None for message in verdicts(fn, seed).values())


def test_check_prints_the_score(capsys):
    check_fit_rate(second_half_fit)
    assert "Convergence rate: all 3 part(s) passed (1.5/1.5 points)" in capsys.readouterr().out


def rejects(fn, *fragments):
    with pytest.raises(AssertionError) as info:
        check_fit_rate(fn)
    for fragment in fragments:
        assert fragment in str(info.value), f"{fragment!r} not in {info.value}"


def test_the_rate_of_the_gap_instead_of_the_error_is_rejected():
    rejects(lambda gaps: second_half_fit(gaps) ** 2, "close to r²", "0/1.5 points")


def test_fitting_the_whole_curve_fails_only_the_tail_part():
    def whole_curve(gaps):
        usable = gaps[gaps > 0]
        return math.exp(np.polyfit(np.arange(len(usable)), np.log(usable), 1)[0] / 2)

    assert failed(whole_curve) == [TAIL]
    rejects(whole_curve, "Fit only the tail", "1/1.5 points")


def test_keeping_the_zeros_fails_only_the_underflow_part():
    def keeps_zeros(gaps):
        with np.errstate(divide="ignore"):
            t = np.arange(len(gaps))[len(gaps) // 2:]
            return math.exp(np.polyfit(t, np.log(gaps[t]), 1)[0] / 2)

    assert failed(keeps_zeros) == [UNDERFLOW]
    rejects(keeps_zeros, "leave out the gaps that are 0")


def test_one_ratio_of_neighbouring_gaps_is_rejected():
    def last_ratio(gaps):
        usable = gaps[gaps > 0]
        return math.sqrt(usable[-1] / usable[-2])

    assert len(failed(last_ratio)) >= 2
    rejects(last_ratio, "fit a straight line")


def test_a_crash_is_reported_per_curve():
    def crashes_on_zeros(gaps):
        if (gaps == 0).any():
            raise ValueError("math domain error")
        return second_half_fit(gaps)

    assert failed(crashes_on_zeros) == [UNDERFLOW]


def test_not_a_number_is_rejected():
    assert failed(lambda gaps: [0.9]) == list(CURVES)
    rejects(lambda gaps: None, "not a number")


def test_unfinished_exercise_says_not_implemented():
    def unfinished(gaps):
        raise NotImplementedError()

    rejects(unfinished, "not implemented yet")


@pytest.mark.parametrize("bad", [None, "passed", {"rates": {GEOMETRIC: True}}, {"rates": []}])
def test_malformed_evidence_fails_without_crashing(bad):
    exercise = exercises.exercise_named(GRADING, "Convergence rate")
    assert all(isinstance(message, str) for message in exercises.judge(exercise, bad, seed=1).values())


def test_grading_row():
    row = exercises.exercise_named(GRADING, "Convergence rate")
    assert row.needs == ("fit_rate",) and row.points == 1.5
