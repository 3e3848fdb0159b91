"""labs_utils.checking: how every check talks to a student."""
import signal

import pytest
import torch

from labs_utils import budget
from labs_utils import checking as _common


def test_not_implemented_becomes_a_short_assertion_that_says_what_to_do():
    def add_noise(x):
        raise NotImplementedError()

    expected = "(?s)not implemented yet.*replace `raise NotImplementedError\\(\\)`"
    with pytest.raises(AssertionError, match=expected) as info:
        _common.call_student(add_noise, 1)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_an_exception_in_student_code_is_named_and_chained():
    def add_noise(x):
        return x + "a"

    with pytest.raises(AssertionError, match="add_noise\\(...\\) raised TypeError") as info:
        _common.call_student(add_noise, 1)
    assert isinstance(info.value.__cause__, TypeError)


def test_an_exception_names_the_line_of_student_code_that_raised_it():
    def add_noise(x):
        doubled = x * 2
        return doubled + "a"

    with pytest.raises(AssertionError) as info:
        _common.call_student(add_noise, 1)
    assert 'It was raised at line' in str(info.value) and '`return doubled + "a"`' in str(info.value)
    assert "traceback above" not in str(info.value)


def test_an_error_raised_by_the_library_only_is_not_blamed_on_a_line_of_the_student():
    with pytest.raises(AssertionError) as info:
        _common.call_student(torch.zeros(2).view, 3, what="view")
    assert "It was raised at" not in str(info.value) and "Read the error message" in str(info.value)


def test_endless_recursion_is_named():
    def add_noise(x):
        return add_noise(x)

    with pytest.raises(AssertionError, match="(?s)raised RecursionError.*calls itself without end"):
        _common.call_student(add_noise, 1)


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="time limits need SIGALRM (POSIX)")
def test_a_time_limit_stops_a_loop_that_never_ends():
    def add_noise(x):
        while True:
            x = x + 1

    with pytest.raises(_common.TimeLimitExceeded, match=r"(?s)add_noise\(x\) did not finish within 0.2 s.*loop"):
        _common.call_student(add_noise, 1, what="add_noise(x)", seconds=0.2)
    assert _common.call_student(lambda x: x + 1, 1, seconds=0.2) == 2  # and the timer is off again afterwards
    assert signal.getitimer(signal.ITIMER_REAL)[0] == 0


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="time limits need SIGALRM (POSIX)")
@pytest.mark.parametrize("stop", ["time limit", "budget"])
def test_a_call_stopped_with_gradients_off_leaves_them_on_for_the_next_calls(stop):
    # The timer can fire inside a `with torch.no_grad():` before its exit switched gradients back on (a busy machine
    # makes that likely): every later training step of the probe, and of the next tests, then failed with "element 0
    # of tensors does not require grad". Switching them off and never returning is the same state, made certain.
    def encode(x):
        torch.set_grad_enabled(False)
        while True:
            x = x + 1

    try:
        with pytest.raises(AssertionError, match="did not finish within 0.2 s"):
            if stop == "time limit":
                _common.call_student(encode, 1, what="encode(x)", seconds=0.2)
            else:
                budget.call_within(0.2, encode, 1, what="encode(x)")
        assert torch.is_grad_enabled()
    finally:
        torch.set_grad_enabled(True)


def test_student_code_that_switches_gradients_off_does_not_switch_them_off_for_the_check():
    def decode(z):
        torch.set_grad_enabled(False)
        return z * 2

    try:
        assert _common.call_student(decode, 3) == 6 and torch.is_grad_enabled()
        with torch.no_grad():  # and a check that calls it with gradients off keeps them off
            _common.call_student(decode, 3)
            assert not torch.is_grad_enabled()
        assert torch.is_grad_enabled()
    finally:
        torch.set_grad_enabled(True)


def test_a_student_assertion_passes_through_unchanged():
    def add_noise(x):
        raise AssertionError("my own check")

    with pytest.raises(AssertionError, match="^my own check$"):
        _common.call_student(add_noise, 1)


def test_calling_something_that_is_not_callable_explains_the_fix():
    with pytest.raises(AssertionError, match="no parentheses"):
        _common.call_student(torch.zeros(2))


def test_require_parameters_names_the_missing_ones():
    def add_noise(x, std):
        return x

    with pytest.raises(AssertionError, match="(?s)no parameter\\(s\\) level, generator.*add_noise\\(x, level"):
        _common.require_parameters(add_noise, ["x", "level", "generator"], "add_noise(x, level, generator=None)")
    _common.require_parameters(lambda x, level, generator=None: x, ["x", "level", "generator"], "")


def test_fail_appends_the_hint():
    with pytest.raises(AssertionError, match="^wrong\nHint: try this$"):
        _common.fail("wrong", "try this")
