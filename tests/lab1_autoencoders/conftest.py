"""Lab 1's tests train small models: they run under the thread policy the notebook's setup_lab applies (one
thread on a machine with two cores, where torch's default made each check many times slower)."""
import pytest
import torch

from labs_utils import runtime


@pytest.fixture(autouse=True)
def lab_threads():
    before = torch.get_num_threads()
    runtime.configure_threads()
    yield
    torch.set_num_threads(before)
