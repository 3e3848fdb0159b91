"""labs_utils.runtime: fast mode, seeds, devices, threads."""
import pytest
import torch

from labs_utils import runtime


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("CI", "LABS_FAST", "LABS_THREADS", "LABS_DEVICE"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize("name", ["CI", "LABS_FAST"])
@pytest.mark.parametrize("value", ["1", "true", "yes"])
def test_fast_mode_is_on_when_ci_or_labs_fast_is_set(clean_env, name, value):
    clean_env.setenv(name, value)
    assert runtime.fast_mode()


@pytest.mark.parametrize("value", ["", "0", "false", "off"])
def test_fast_mode_is_off_for_empty_or_false_values(clean_env, value):
    clean_env.setenv("LABS_FAST", value)
    assert not runtime.fast_mode()


def test_by_mode_picks_fast_value_only_in_fast_mode(clean_env):
    assert runtime.by_mode(full=30, fast=2) == 30
    clean_env.setenv("LABS_FAST", "1")
    assert runtime.by_mode(full=30, fast=2) == 2


def test_set_seed_makes_torch_numpy_and_random_repeat():
    import random

    import numpy as np

    runtime.set_seed(7)
    first = (torch.rand(3), np.random.rand(3), random.random())
    runtime.set_seed(7)
    second = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(first[0], second[0])
    assert (first[1] == second[1]).all() and first[2] == second[2]


@pytest.mark.parametrize("seed", [-1, 1.5, "0"])
def test_set_seed_rejects_non_integer_or_negative_seeds(seed):
    with pytest.raises(ValueError, match="non-negative int"):
        runtime.set_seed(seed)


def test_get_device_falls_back_to_cpu_without_accelerators(clean_env, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(runtime, "_mps_available", lambda: False)
    assert runtime.get_device() == torch.device("cpu")


def test_get_device_prefers_cuda_then_mps(clean_env, monkeypatch):
    monkeypatch.setattr(runtime, "_mps_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert runtime.get_device() == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert runtime.get_device() == torch.device("mps")


def test_get_device_names_the_choices_for_an_unknown_device(clean_env):
    with pytest.raises(ValueError, match="unknown device 'tpu'; use 'cpu', 'cuda'.*'mps'"):
        runtime.get_device("tpu")


def test_get_device_explains_a_missing_gpu(clean_env, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="use 'cpu'"):
        runtime.get_device("cuda")


def test_labs_device_environment_variable_forces_the_device(clean_env):
    clean_env.setenv("LABS_DEVICE", "cpu")
    assert runtime.get_device() == torch.device("cpu")


def test_thread_policy_uses_one_thread_on_two_cores(clean_env, monkeypatch):
    monkeypatch.setattr(runtime.os, "cpu_count", lambda: 2)
    assert runtime.recommended_threads() == 1
    monkeypatch.setattr(runtime.os, "cpu_count", lambda: 16)
    assert runtime.recommended_threads() == 4


def test_labs_threads_overrides_the_policy_and_is_validated(clean_env):
    clean_env.setenv("LABS_THREADS", "3")
    assert runtime.recommended_threads() == 3
    clean_env.setenv("LABS_THREADS", "many")
    with pytest.raises(ValueError, match="positive integer"):
        runtime.recommended_threads()


def test_setup_lab_seeds_sets_threads_and_prints_a_summary(clean_env, capsys):
    before = torch.get_num_threads()
    try:
        clean_env.setenv("LABS_THREADS", "1")
        device = runtime.setup_lab(seed=3, device="cpu")
        assert device == torch.device("cpu") and torch.get_num_threads() == 1
        assert "device: cpu" in capsys.readouterr().out
        first = torch.rand(2)
        runtime.setup_lab(seed=3, device="cpu", verbose=False)
        assert torch.equal(first, torch.rand(2))
    finally:
        torch.set_num_threads(before)


def test_seeded_repeats_inside_and_restores_the_callers_random_state():
    torch.manual_seed(11)
    expected_after = torch.rand(3)
    torch.manual_seed(11)
    with runtime.seeded(5):
        inside = torch.rand(3)
    with runtime.seeded(5):
        assert torch.equal(torch.rand(3), inside)
    assert torch.equal(torch.rand(3), expected_after)
