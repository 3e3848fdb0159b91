"""Lab 2 wing: the tracker (exact live-storage bytes, the CUDA path), the analytic model and the experiments."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from reference_checkpointing import checkpointed_saved_input  # a reference solution lives in the tests only
from torch import nn
from torch.utils.checkpoint import checkpoint_sequential

from labs_utils import lab2_checkpointing as lab2
from labs_utils.lab2_checkpointing import (
    MemoryTracker,
    experiments,
    measure_step,
    plot_memory_timeline,
    predicted_peak_bytes,
    segment_annotation,
    track_memory,
)
from labs_utils.lab2_checkpointing import tracker as tracker_module

WIDTH, BATCH = 32, 16
ACTIVATION = WIDTH * BATCH * 4  # bytes of one float32 activation (BATCH, WIDTH)


def linear_relu_blocks(n_blocks: int) -> nn.Sequential:
    return lab2.linear_blocks(n_blocks, WIDTH)


def make_input() -> torch.Tensor:
    return torch.randn(BATCH, WIDTH)


def test_counts_the_exact_bytes_of_tensors_created_in_the_block():
    with track_memory("cpu") as tracker:
        kept = torch.empty(1000)
    assert tracker.report().peak_allocated_bytes == 4000
    assert kept.numel() == 1000


def test_events_line_a_log_up_with_the_timeline():
    with track_memory("cpu") as tracker:
        first = torch.ones(10)
        seen = tracker.events  # the next sample's index: what a log written now refers to
        second = first * 2
    timeline = tracker.report().timeline
    assert seen >= 1 and timeline[seen - 1] == 40 and timeline[seen] == 80 and len(timeline) == tracker.events
    assert second.numel() == 10


def test_views_share_their_storage_and_count_once():
    with track_memory("cpu") as tracker:
        x = torch.zeros(10, 10)
        views = [x.t(), x[2:], x.view(100)]
    assert tracker.report().timeline[-1] == 400
    assert len(views) == 3


def test_released_tensors_leave_the_timeline():
    with track_memory("cpu") as tracker:
        x = torch.ones(256)
        del x
        torch.ones(8)
    timeline = tracker.report().timeline
    assert timeline.max() == 1024
    assert timeline[-1] == 0  # the ones(8) was released as soon as it was made


def test_operations_returning_several_tensors_count_each_new_one():
    x = torch.randn(100)
    with track_memory("cpu") as tracker:
        parts = x.split(50)  # views of x: no new memory
        values, indices = x.sort()  # two new tensors, float32 and int64
    assert tracker.report().timeline[-1] == 100 * 4 + 100 * 8
    assert len(parts) == 2 and values.shape == indices.shape


def test_tensors_created_before_the_block_do_not_count():
    x = torch.randn(100)
    with track_memory("cpu") as tracker:
        y = x.mul_(2).view(10, 10)  # in place and a view: no new memory
        z = y + 1
    assert tracker.report().timeline[-1] == z.untyped_storage().nbytes() == 400


def test_parameters_and_gradients_are_reported_apart_from_activations():
    blocks = linear_relu_blocks(2)
    report = measure_step(blocks, make_input, blocks.parameters())
    param_bytes = sum(p.numel() * 4 for p in blocks.parameters())
    assert report.param_bytes == param_bytes
    assert report.grad_bytes == param_bytes
    assert report.grad_timeline[-1] == param_bytes
    assert report.activation_timeline[-1] == ACTIVATION + 4  # still alive: the output and the scalar loss
    assert report.peak_bytes == param_bytes + report.peak_allocated_bytes


def test_phases_are_found_without_help():
    blocks = linear_relu_blocks(4)
    report = measure_step(lambda x: checkpoint_sequential(blocks, 2, x, use_reentrant=False),
                          lambda: make_input().requires_grad_(), blocks.parameters())
    phases = list(report.phases)
    first_backward = phases.index("backward")
    assert set(phases[:first_backward]) == {"forward"}
    assert "recompute" in phases[first_backward:]  # checkpoint_sequential replays its first segment only
    assert report.bytes_at("backward") == report.timeline[report.marks[0][0]]


def test_torch_still_tells_whether_the_autograd_engine_runs():
    # tracker_module._current_phase relies on this private torch API; without it the phases only follow the marks
    assert tracker_module._graph_task_id is not None, (
        "torch no longer has torch._C._current_graph_task_id: the tracker now finds the backward pass "
        "only from tracker.mark('backward'); find a replacement and update tracker_module._current_phase")
    assert tracker_module._graph_task_id() == -1  # outside backward


def test_without_the_private_api_phases_follow_the_backward_mark(monkeypatch):
    monkeypatch.setattr(tracker_module, "_graph_task_id", None)
    blocks = linear_relu_blocks(4)
    report = measure_step(lambda x: checkpoint_sequential(blocks, 2, x, use_reentrant=False),
                          lambda: make_input().requires_grad_(), blocks.parameters())
    start = report.marks[0][0] + 1
    assert set(report.phases[:start]) == {"forward"}
    assert set(report.phases[start:]) == {"backward", "recompute"}


def test_repeated_measurements_are_identical():
    blocks = linear_relu_blocks(3)
    first = measure_step(blocks, make_input, blocks.parameters())
    second = measure_step(blocks, make_input, blocks.parameters())
    assert np.array_equal(first.timeline, second.timeline)
    assert first.phases == second.phases


def test_plain_backprop_peak_equals_the_model():
    blocks = linear_relu_blocks(6)
    report = measure_step(blocks, make_input, blocks.parameters())
    # the model counts activations; the step also holds the scalar loss and its gradient (4 bytes each)
    assert report.peak_activation_bytes - predicted_peak_bytes(6, None, ACTIVATION) == 8


@pytest.mark.parametrize("segment_size", [1, 2, 3, 4, 5, 6, 7])
def test_checkpointed_peak_equals_the_model(segment_size):
    blocks = linear_relu_blocks(6)
    report = measure_step(lambda x: checkpointed_saved_input(blocks, x, segment_size), make_input,
                          blocks.parameters())
    assert report.peak_activation_bytes - predicted_peak_bytes(6, segment_size, ACTIVATION) == 8


def test_model_counts_checkpoints_segment_and_gradients_in_flight():
    assert predicted_peak_bytes(12, None, 1) == 15  # 12 activations + input + 2 gradients
    assert predicted_peak_bytes(12, 4, 1) == 3 + 4 + 3
    assert predicted_peak_bytes(12, 1, 1) == 12 + 1 + 3  # every block alone: no better than plain
    assert predicted_peak_bytes(12, 20, 1) == predicted_peak_bytes(12, 12, 1) == 1 + 12 + 3
    assert min(range(1, 13), key=lambda k: predicted_peak_bytes(12, k, 1)) in (3, 4)  # near sqrt(12)


@pytest.mark.parametrize("args", [(0, 4, 1), (12, 0, 1)])
def test_model_rejects_impossible_sizes(args):
    with pytest.raises(ValueError, match="must be a positive int"):
        predicted_peak_bytes(*args)


def test_unknown_device_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        track_memory("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_missing_gpu_is_a_clear_error():
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        track_memory("cuda")


def test_nested_trackers_are_refused():
    with track_memory("cpu"):
        with pytest.raises(RuntimeError, match="cannot be nested"):
            with track_memory("cpu"):
                pass
        torch.ones(1)


def test_a_block_that_creates_no_tensor_is_an_error():
    with pytest.raises(RuntimeError, match="recorded nothing"):
        with track_memory("cpu"):
            pass


def test_report_is_only_ready_after_the_block():
    tracker = track_memory("cpu")
    with pytest.raises(RuntimeError, match="no report yet"):
        tracker.report()
    with tracker:
        torch.ones(1)
        with pytest.raises(RuntimeError, match="ready when"):
            tracker.report()
    assert tracker.report().peak_allocated_bytes == 4
    with pytest.raises(RuntimeError, match="inside the `with"):
        tracker.mark("late")


def test_a_tracker_records_one_block_only():
    tracker = track_memory("cpu")
    with tracker:
        torch.ones(1)
    with pytest.raises(RuntimeError, match="already been used"):
        with tracker:
            pass


def test_an_error_in_the_block_leaves_no_report_and_no_active_tracker():
    tracker = track_memory("cpu")
    with pytest.raises(ZeroDivisionError):
        with tracker:
            torch.ones(1)
            raise ZeroDivisionError("a bug in the measured code")
    with pytest.raises(RuntimeError, match="raised an exception"):
        tracker.report()
    with track_memory("cpu") as fresh:  # the failed block did not stay active
        torch.ones(2)
    assert fresh.report().peak_allocated_bytes == 8


def test_missing_mark_names_the_marks_there_are():
    blocks = linear_relu_blocks(1)
    report = measure_step(blocks, make_input, blocks.parameters())
    with pytest.raises(KeyError, match="marks: 'backward'"):
        report.bytes_at("forward")


class FakeCudaAllocator:
    """Stands in for torch.cuda's allocator statistics: the bytes in use follow a script."""

    def __init__(self, in_use: list, peak: int) -> None:
        self.in_use, self.peak, self.calls = list(in_use), peak, []

    def memory_allocated(self, device=None) -> int:
        return self.in_use.pop(0) if len(self.in_use) > 1 else self.in_use[0]

    def max_memory_allocated(self, device=None) -> int:
        return self.peak

    def reset_peak_memory_stats(self, device=None) -> None:
        self.calls.append("reset_peak_memory_stats")

    def synchronize(self, device=None) -> None:
        self.calls.append("synchronize")


def test_cuda_path_reports_allocator_statistics_relative_to_the_start(monkeypatch):
    fake = FakeCudaAllocator(in_use=[1000, 1400, 1300, 1300], peak=1900)
    for name in ("memory_allocated", "max_memory_allocated", "reset_peak_memory_stats", "synchronize"):
        monkeypatch.setattr(torch.cuda, name, getattr(fake, name))
    monkeypatch.setattr(MemoryTracker, "_on_device", lambda self, tensor: True)  # CPU tensors stand in
    tracker = MemoryTracker(torch.device("cuda", 0), params=[])
    with tracker:
        x = torch.ones(100)
        y = x + 1
    report = tracker.report()
    assert fake.calls[:2] == ["synchronize", "reset_peak_memory_stats"]  # peak reset on entry
    assert report.timeline.tolist()[:2] == [400, 300]  # memory_allocated minus its value on entry
    assert report.peak_allocated_bytes == 900  # max_memory_allocated minus the same baseline
    assert report.method == tracker_module._CUDA_METHOD
    assert report.device == "cuda:0"
    assert y.shape == (100,)


def test_timeline_plot_labels_each_recomputed_segment():
    blocks = linear_relu_blocks(6)
    report = measure_step(lambda x: checkpointed_saved_input(blocks, x, 3), make_input, blocks.parameters())
    fig = plot_memory_timeline(report, segments=[(4, 6), (1, 3)],
                               predicted_peak=predicted_peak_bytes(6, 3, ACTIVATION))
    assert isinstance(fig, Figure)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert segment_annotation(4, 6) in texts and segment_annotation(1, 3) in texts
    assert "load checkpoint 3" in segment_annotation(4, 6) and "recompute 4\u20136" in segment_annotation(4, 6)


def test_timeline_plot_refuses_segments_that_do_not_match_the_recomputations():
    blocks = linear_relu_blocks(6)
    report = measure_step(lambda x: checkpointed_saved_input(blocks, x, 3), make_input, blocks.parameters())
    with pytest.raises(ValueError, match="2 recomputations"):
        plot_memory_timeline(report, segments=[(1, 6)])


def test_timeline_plot_tells_a_student_whose_function_never_recomputes_what_to_do():
    blocks = linear_relu_blocks(6)
    report = measure_step(blocks, make_input, blocks.parameters())  # a "checkpointed_forward" that runs plainly
    with pytest.raises(ValueError, match="no recomputation") as raised:
        plot_memory_timeline(report, segments=[(4, 6), (1, 3)])
    assert "check_checkpointing(checkpointed_forward)" in str(raised.value)


# --- lab2_checkpointing.experiments: the experiments of the lab ----------------------------------------------
def test_largest_batch_finds_the_exact_limit_with_few_measurements():
    calls = []

    def peak(batch):  # 1,000 fixed bytes, 37 per sample, and a bump at small batches (non-linear)
        calls.append(batch)
        return 1000 + 37 * batch + (50 if batch < 8 else 0)

    result = lab2.largest_batch(peak, budget_bytes=10_000)
    assert result.batch_size == 243  # 1000 + 37 * 243 = 9991 <= 10000 < 10028
    assert len(calls) <= 8
    assert result.peaks[243] == 9991


def test_largest_batch_refuses_a_budget_smaller_than_one_sample():
    with pytest.raises(ValueError, match="a batch of 1 needs"):
        lab2.largest_batch(lambda batch: 500 * batch, budget_bytes=100)


def test_predicted_time_ratio_adds_the_replayed_share_of_the_forward_pass():
    step = lab2.StepTime(forward_s=1.0, backward_s=2.0)
    assert lab2.predicted_time_ratio(step) == pytest.approx(4 / 3)
    assert lab2.predicted_time_ratio(step, recomputed_fraction=8 / 12) == pytest.approx(1 + 2 / 9)


def _busy(iterations: int = 300_000) -> None:
    """A fixed amount of CPU work (a few milliseconds)."""
    total = 0
    for i in range(iterations):
        total += i


class SlowBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 1

    @staticmethod
    def backward(ctx, grad):
        _busy()
        return grad


def test_time_steps_times_forward_and_backward_apart():
    w = torch.ones(4, requires_grad=True)

    def slow_forward():
        _busy()
        return (w * 1).sum()

    times = lab2.time_steps({"slow forward": slow_forward,
                             "slow backward": lambda: SlowBackward.apply(w).sum()}, repeats=2)
    assert times["slow forward"].forward_s > 3 * times["slow forward"].backward_s
    assert times["slow backward"].backward_s > 3 * times["slow backward"].forward_s
    assert times["slow forward"].total_s == times["slow forward"].forward_s + times["slow forward"].backward_s


def test_time_in_rounds_gives_one_ratio_per_round_to_the_reference():
    w = torch.ones(4, requires_grad=True)
    steps = {"plain": lambda: (w * 1).sum(), "twice": lambda: (w * 2).sum()}
    result = lab2.time_in_rounds(steps, "plain", "cpu", rounds=3, repeats=1)
    assert list(result.ratios) == ["twice"] and len(result.ratios["twice"]) == 3
    assert all(ratio > 0 for ratio in result.ratios["twice"])
    with pytest.raises(ValueError, match="not one of the steps"):
        lab2.time_in_rounds(steps, "missing", "cpu", rounds=1, repeats=1)


def test_repeated_ratios_summary_prints_medians_and_ranges_but_no_verdict():
    apart = lab2.RepeatedRatios("plain", {"k = 4": (1.40, 1.43, 1.41), "k = 8": (1.27, 1.30, 1.36)}, "CPU time")
    assert apart.spread == pytest.approx(0.09)
    lines = apart.summary().splitlines()
    assert "median 1.41" in lines[0] and "range 0.03" in lines[0]
    assert "median 1.30" in lines[1] and "range 0.09" in lines[1]
    assert "up to 0.09" in lines[2] and len(lines) == 3
    # the comparison is the student's: no verdict, whichever way the data fall
    for ratios in (apart, lab2.RepeatedRatios("plain", {"a": (1.40, 1.43), "b": (1.42, 1.50)}, "CPU time")):
        text = ratios.summary()
        assert "noise" not in text and "apart" not in text and "differ" not in text


def test_repeated_ratios_ranges_are_those_of_the_printed_ratios():
    # unrounded, 1.446 - 1.394 = 0.052 would print 0.05; the printed ratios 1.39 and 1.45 differ by 0.06
    ratios = lab2.RepeatedRatios("plain", {"plain, x requires grad": (1.394, 1.446)}, "CPU time")
    first = ratios.summary().splitlines()[0]
    assert "1.39 1.45" in first and "range 0.06" in first and ratios.spread == pytest.approx(0.06)
    assert first.startswith("plain, x requires grad 1.39")  # a long name widens the column


def test_blocks_work_share_counts_the_blocks_flops_against_the_whole_forward():
    cnn = lab2.deep_cnn(n_blocks=4, channels=8)
    images = torch.randn(2, 1, 28, 28)
    share = lab2.blocks_work_share(cnn, images)
    # by hand: a 3x3 convolution does 2 * 9 * c_in * c_out multiply-adds per output pixel (FlopCounterMode
    # counts 2 flops per multiply-add); the stem outputs 14x14 from 1 channel, the blocks 8 convs 8 -> 8
    pixels = 2 * 14 * 14
    stem, blocks, head = 2 * 9 * 1 * 8 * pixels, 8 * 2 * 9 * 8 * 8 * pixels, 2 * 2 * 8 * 10
    assert share == pytest.approx(blocks / (stem + blocks + head))
    assert lab2.blocks_work_share(lab2.deep_cnn(n_blocks=1, channels=8), images) < share < 1


def test_clock_is_cpu_time_for_one_cpu_thread_and_wall_time_otherwise(monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert lab2.clock_for("cpu")[1] == "CPU time"
    assert lab2.clock_for("mps")[1] == lab2.clock_for("cuda")[1] == "wall time"
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)  # CPU time would add up the threads
    assert lab2.clock_for("cpu")[1] == "wall time"


def test_timing_waits_for_the_gpu_on_mps_and_cuda(monkeypatch):
    waited = []
    monkeypatch.setattr(torch.mps, "synchronize", lambda: waited.append("mps"))
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: waited.append("cuda"))
    for device in ("mps", "cuda:0", "cpu"):
        experiments._synchronize(torch.device(device))
    assert waited == ["mps", "cuda"]


def test_count_calls_counts_forward_runs_and_removes_its_hooks():
    blocks = linear_relu_blocks(3)
    with lab2.count_calls(blocks) as calls:
        blocks(make_input())
        blocks[0](make_input())
    blocks(make_input())
    assert calls == [2, 1, 1]


def test_gradient_error_is_relative_to_the_reference():
    blocks = linear_relu_blocks(2)
    # doubling the output doubles the loss's square root: gradients 4 times the reference's, error 3
    error = lab2.gradient_error(lambda x: 2 * blocks(x), blocks, list(blocks.parameters()), make_input())
    assert error == pytest.approx(3.0, rel=1e-5)


def test_gradient_error_replays_the_same_random_numbers_for_both_runs():
    with_dropout = nn.Sequential(nn.Linear(WIDTH, WIDTH), nn.Dropout(0.5))
    assert lab2.gradient_error(with_dropout, with_dropout, list(with_dropout.parameters()), make_input()) == 0.0


def test_helpers_leave_the_random_state_unchanged():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    blocks = lab2.linear_blocks(2, WIDTH)
    lab2.deep_cnn(n_blocks=1, channels=4)
    lab2.downsampling_cnn()
    lab2.gradient_error(blocks, blocks, list(blocks.parameters()), torch.ones(BATCH, WIDTH))
    assert torch.equal(torch.get_rng_state(), before)


def test_each_linear_relu_block_keeps_one_activation():
    assert lab2.stored_bytes_per_block(linear_relu_blocks(3), make_input()) == [ACTIVATION] * 3


def test_segment_sweep_measures_every_size_against_the_model():
    blocks = linear_relu_blocks(4)
    sweep = lab2.segment_sweep(checkpointed_saved_input, blocks, make_input, (1, 2, 4), "cpu", repeats=1)
    assert [peak - model for peak, model in zip(sweep.peaks, sweep.predicted_peaks)] == [8, 8, 8]
    assert sweep.plain_peak == predicted_peak_bytes(4, None, ACTIVATION) + 8
    assert len(sweep.table().splitlines()) == 2 + 3
    assert isinstance(lab2.plot_segment_sweep(sweep), Figure)


@pytest.mark.parametrize("model", [lab2.deep_cnn(n_blocks=2, channels=4), lab2.downsampling_cnn()],
                         ids=["deep_cnn", "downsampling_cnn"])
def test_cnns_classify_mnist_sized_images(model):
    images, labels = lab2.mnist_like_batch(3)()
    assert model(images).shape == (3, 10)
    assert model(images, lambda blocks, h: blocks(h)).shape == (3, 10)
    assert labels.shape == (3,)


def test_raised_at_names_the_line_of_a_custom_backward_not_torchs_code():
    from labs_utils.lab2_checkpointing import raised_at

    class ReplayOnLeaf(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * 2

        @staticmethod
        def backward(ctx, grad_output):
            x = ctx.saved_tensors[0].detach().requires_grad_()
            with torch.enable_grad():
                torch.nn.functional.leaky_relu(x, 0.1, inplace=True)  # the leaf rule raises here
            return grad_output

    try:
        ReplayOnLeaf.apply(torch.randn(3, requires_grad=True) * 1.0).sum().backward()
    except RuntimeError as error:
        where = raised_at(error)
    assert where.startswith("`backward`, at `torch.nn.functional.leaky_relu(x, 0.1, inplace=True)")
