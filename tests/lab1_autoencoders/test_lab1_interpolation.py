"""Lab 1's interpolation check: correct walks written in several styles pass; each classmate's mistake is
rejected with a message that names it, and costs only the part it breaks."""
from __future__ import annotations

import inspect

import pytest
import torch
from lab1_references import interpolate

from labs_utils import exercises
from labs_utils.checks import check_interpolate
from labs_utils.lab1_autoencoders import exercise_interpolation as walk


def interpolate_loop(model, x_a, x_b, steps=8):
    """One code at a time with torch.lerp, stacked: equally correct."""
    with torch.no_grad():
        z_a, z_b = model.encoder(x_a.unsqueeze(0)), model.encoder(x_b.unsqueeze(0))
        return torch.cat([model.decoder(torch.lerp(z_a, z_b, k / (steps - 1))) for k in range(steps)])


def interpolate_step_form(model, x_a, x_b, steps=8):
    """z_a + t (z_b - z_a), codes in float64, no torch.no_grad: equally correct."""
    z_a, z_b = (model.encoder(x[None]).double() for x in (x_a, x_b))
    t = torch.linspace(0, 1, steps, dtype=torch.float64)[:, None]
    return model.decoder((z_a + t * (z_b - z_a)).float()).detach()


def interpolate_with_eval(model, x_a, x_b, steps=8):
    """Calls model.eval() itself (the model is already in evaluation mode): harmless."""
    model.eval()
    return interpolate(model, x_a, x_b, steps)


def pixel_blend(model, x_a, x_b, steps=8):
    ends = model(torch.stack([x_a, x_b]))
    t = torch.linspace(0, 1, steps)[:, None, None, None]
    return (1 - t) * ends[:1] + t * ends[1:]


def encoded_blend(model, x_a, x_b, steps=8):
    t = torch.linspace(0, 1, steps)[:, None, None, None]
    return model.decoder(model.encoder((1 - t) * x_a + t * x_b))


def image_blend(model, x_a, x_b, steps=8):
    t = torch.linspace(0, 1, steps)[:, None, None, None]
    return (1 - t) * x_a + t * x_b


def forgets_z_a(model, x_a, x_b, steps=8):
    z = model.encoder(torch.stack([x_a, x_b]))
    t = torch.linspace(0, 1, steps)[:, None]
    return model.decoder(z[:1] + t * z[1:])


def end_left_out(model, x_a, x_b, steps=8):
    z = model.encoder(torch.stack([x_a, x_b]))
    t = (torch.arange(steps) / steps)[:, None]
    return model.decoder((1 - t) * z[:1] + t * z[1:])


def train_mode(model, x_a, x_b, steps=8):
    model.train()
    return interpolate(model, x_a, x_b, steps)


def leaves_train_mode(model, x_a, x_b, steps=8):
    path = interpolate(model, x_a, x_b, steps)
    model.train()
    return path


def reversed_path(model, x_a, x_b, steps=8):
    return interpolate(model, x_b, x_a, steps)


def fixed_steps(model, x_a, x_b, steps=8):
    return interpolate(model, x_a, x_b, 8)


def a_list(model, x_a, x_b, steps=8):
    return list(interpolate(model, x_a, x_b, steps))


def changes_inputs(model, x_a, x_b, steps=8):
    x_a.clamp_(0, 0.5)
    return interpolate(model, x_a, x_b, steps)


def codes_only(model, x_a, x_b, steps=8):
    z = model.encoder(torch.stack([x_a, x_b]))
    t = torch.linspace(0, 1, steps)[:, None]
    return (1 - t) * z[:1] + t * z[1:]


def both_ends_left_out(model, x_a, x_b, steps=8):
    with torch.no_grad():
        z = model.encoder(torch.stack([x_a, x_b]))
        t = (torch.arange(1, steps + 1) / (steps + 1))[:, None]
        return model.decoder((1 - t) * z[:1] + t * z[1:])


def uneven(model, x_a, x_b, steps=8):
    """Both ends right, but the fractions squared: on the segment, not evenly spaced."""
    with torch.no_grad():
        z = model.encoder(torch.stack([x_a, x_b]))
        t = (torch.linspace(0, 1, steps) ** 2)[:, None]
        return model.decoder((1 - t) * z[:1] + t * z[1:])


def keeps_the_graph(model, x_a, x_b, steps=8):
    z = model.encoder(torch.stack([x_a, x_b]))
    t = torch.linspace(0, 1, steps)[:, None]
    return model.decoder((1 - t) * z[:1] + t * z[1:])


def decodes_ends_first(model, x_a, x_b, steps=8):
    """Reconstructs both images with model(...) first, then decodes the path: extra decoder calls, equally correct."""
    with torch.no_grad():
        model(torch.stack([x_a, x_b]))
        return interpolate(model, x_a, x_b, steps)


@pytest.mark.parametrize("fn", [interpolate, interpolate_loop, interpolate_step_form, interpolate_with_eval,
                                decodes_ends_first])
def test_interpolation_check_accepts_correct_styles(fn, capsys):
    check_interpolate(fn)
    assert "Latent interpolation: all 2 part(s) passed (1.5/1.5 points)" in capsys.readouterr().out


MISTAKES = [  # (wrong, points earned, message)
    (pixel_blend, 0.5, "are not the decoder's image of any code it was given (mixed after decoding?)"),
    (encoded_blend, 0.5, "the codes between the ends are not on the straight segment from z_a to z_b"),
    (forgets_z_a, 0.0, "the last image decodes z_a + z_b, not z_b"),
    (leaves_train_mode, 0.5, "left the model in training mode"),
    (train_mode, 0.0, "ran the model in training mode (BatchNorm1d and Dropout"),
    (image_blend, 0.0, "starts with x_a itself, and never ran model.decoder"),
    (end_left_out, 0.0, "the codes stop short of z_b"),
    (both_ends_left_out, 0.0, "the first image is not decoded from the code of x_a"),
    (uneven, 0.5, "the codes sit at fractions 0.00, 0.06, 0.25, 0.56, 1.00 of the way from z_a to z_b, not evenly"),
    (keeps_the_graph, 0.5, "still carry the autograd graph"),
    (reversed_path, 0.0, "goes from x_b to x_a"),
    (fixed_steps, 0.0, "returned shape (8, 1, 28, 28); expected (5, 1, 28, 28).\nHint: one image per step"),
    (a_list, 0.0, "returned list, not a tensor"),
    (changes_inputs, 0.0, "changed x_a or x_b in place"),
    (codes_only, 0.0, "returned shape (5, 3); expected (5, 1, 28, 28)"),
]


@pytest.mark.parametrize("wrong, earned, message", MISTAKES, ids=lambda v: getattr(v, "__name__", None))
def test_interpolation_check_rejects_each_mistake_with_its_own_message(wrong, earned, message):
    verdicts = exercises.grade_here(walk.INTERPOLATION, (wrong,), seed=7)
    assert exercises.points(walk.INTERPOLATION, verdicts) == earned
    assert message in verdicts[walk.PATH] and "Hint" in verdicts[walk.PATH]


def test_forgetting_z_a_is_not_told_about_linspace():
    verdicts = exercises.grade_here(walk.INTERPOLATION, (forgets_z_a,), seed=7)
    assert all("z_b itself" in m and "linspace" not in m for m in verdicts.values())


def test_no_message_of_the_check_spells_out_the_walk():
    """A student who opens the checker or reads its messages learns the contract, not the line that meets it."""
    source = inspect.getsource(walk)
    for line in ("linspace", "torch.lerp", "(1 - t)", "z_a + t"):
        assert line not in source
    for wrong, _, _ in MISTAKES:
        for message in exercises.grade_here(walk.INTERPOLATION, (wrong,), seed=7).values():
            assert message is None or ("linspace" not in message and "(1 - t)" not in message)


@pytest.mark.parametrize("seed", [0, 1, 2**31 - 1])
def test_correct_interpolation_passes_and_blends_fail_with_the_graders_fresh_seeds(seed):
    for fn, earned in ((interpolate_loop, 1.5), (pixel_blend, 0.5), (encoded_blend, 0.5), (train_mode, 0.0)):
        assert exercises.points(walk.INTERPOLATION, exercises.grade_here(walk.INTERPOLATION, (fn,), seed)) == earned


def test_the_probe_model_tells_every_mistake_from_the_path_by_far():
    """Codes of a pixel blend lie far off the segment, and a mix of decoded images far from every decoded code,
    so neither passes by accident (with 2 steps a path is its two ends, which blends get right)."""
    for seed in range(20):
        model, x_a, x_b = walk._inputs(walk.inputs_interpolate(seed=seed))
        with torch.no_grad():
            z_a, z_b = model.encoder(x_a[None]), model.encoder(x_b[None])
            half = model.encoder(((x_a + x_b) / 2)[None])
            off = walk._Walk(model, model.decoder(half), half.double(), z_a.double(), z_b.double()).off_line()
            assert off > 100 * walk.CODE_TOLERANCE
            fade = (model.decoder(z_a) + model.decoder(z_b)) / 2
            assert walk._Walk(model, fade, ((z_a + z_b) / 2).double(), z_a.double(), z_b.double()).frame_codes == [None]


def test_the_probe_model_is_in_evaluation_mode_and_its_training_mode_differs():
    model, x_a, x_b = walk._inputs(walk.inputs_interpolate(seed=3))
    assert not any(m.training for m in model.modules())
    with torch.no_grad():
        codes = model.encoder(torch.stack([x_a, x_b]))
        model.train()
        assert (model.encoder(torch.stack([x_a, x_b])) - codes).abs().max() > 0.1
