"""Lab 1's small experiments: BatchNorm on and off over several seeds, and the open challenge's rules.

    runs = batchnorm_seeds(lambda: ConvAutoencoder(32), train, seeds=range(4), steps=100, x_train=x_train,
                           x_val=x_val, lr=2e-3)
    display(Markdown(runs.table())); print(runs.verdict())
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .analysis import reconstruction_mse

STUCK_SHARE = 0.8  # a run whose validation MSE is above 80 % of the mean image's learned next to nothing


def without_batchnorm(model: nn.Module) -> nn.Module:
    """The same model with every BatchNorm layer replaced by an identity (in place; returns the model)."""
    for name, child in list(model.named_children()):
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(model, name, nn.Identity())
        else:
            without_batchnorm(child)
    return model


def mean_image_mse(x_train: torch.Tensor, x_val: torch.Tensor) -> float:
    """The validation MSE of drawing the mean training image whatever the input: the error of learning nothing."""
    mean = x_train.float().mean(dim=0, keepdim=True)
    return F.mse_loss(mean.expand_as(x_val), x_val.float()).item()


@dataclass
class SeedRuns:
    """Validation MSE after training, per variant ("with BatchNorm", "without") and seed."""

    baseline: float  # the mean image's validation MSE
    mse: dict[str, dict[int, float]] = field(default_factory=dict)
    black: float | None = None  # an all-black output's validation MSE (what a saturated Sigmoid draws)

    def stuck(self, variant: str) -> list[int]:
        """Seeds whose run ended above STUCK_SHARE of the mean image's error (or not finite)."""
        return [s for s, v in self.mse[variant].items() if not v == v or v > STUCK_SHARE * self.baseline]

    def table(self) -> str:
        from ..tables import markdown_table

        variants = list(self.mse)
        seeds = list(self.mse[variants[0]])
        rows = [[seed, *(self.mse[v][seed] for v in variants)] for seed in seeds]  # floats: 4 decimals
        rows.append(["learned next to nothing", *(f"{len(self.stuck(v))} of {len(seeds)}" for v in variants)])
        return markdown_table(["seed", *(f"validation MSE, {v}" for v in variants)], rows) + (
            f"\n\nThe mean image (learning nothing) scores {self.baseline:.4f}; a run above "
            f"{STUCK_SHARE * self.baseline:.4f} counts as having learned next to nothing"
            + ("." if self.black is None else f"; an all-black image (drawing nothing) scores {self.black:.4f}."))

    def verdict(self) -> str:
        """One sentence saying what the runs show, with the spread of each variant."""
        parts = []
        for variant, values in self.mse.items():
            v = torch.tensor(list(values.values()))
            parts.append(f"{variant}: {len(self.stuck(variant))} of {len(v)} runs learned next to nothing, MSE "
                         f"{v.min():.4f} to {v.max():.4f}")
        with_bn, without = (list(self.mse[k].values()) for k in self.mse)
        separated = max(with_bn) < min(without)
        return "; ".join(parts) + (". Every run with BatchNorm ended below every run without it." if separated else
                                   ". The two ranges overlap: these seeds do not separate the variants.")


def batchnorm_seeds(make_model: Callable[[], nn.Module], train: Callable[..., object], seeds: Iterable[int],
                    steps: int, x_train: torch.Tensor, x_val: torch.Tensor, lr: float) -> SeedRuns:
    """Train ``make_model()`` with and without its BatchNorm layers from each seed (``train(model, steps, desc,
    lr=lr)``, the notebook's function); the validation MSE of each run. Seeds make the two variants start from
    the same draws of torch's generator; the notebook's random state is restored afterwards."""
    runs = SeedRuns(mean_image_mse(x_train, x_val), black=float((x_val.float() ** 2).mean()))
    state = torch.get_rng_state()
    try:
        for variant, change in (("with BatchNorm", lambda m: m), ("without BatchNorm", without_batchnorm)):
            runs.mse[variant] = {}
            for seed in seeds:
                torch.manual_seed(seed)
                model = change(make_model())
                train(model, steps, desc=f"{variant}, seed {seed}", lr=lr)
                runs.mse[variant][seed] = reconstruction_mse(model, x_val)
    finally:
        torch.set_rng_state(state)
    return runs


# ----------------------------------------------------------------------------- the open challenge

@dataclass(frozen=True)
class Challenge:
    """The open challenge's rules: a code of ``code_dim`` numbers, at most ``max_parameters`` weights, at most
    ``max_seconds`` of training on a laptop CPU, a test MSE of at most ``target_mse`` (full mode)."""

    code_dim: int = 32
    max_parameters: int = 50_000
    max_seconds: float = 60.0
    target_mse: float = 0.0100


CHALLENGE = Challenge()


def probe_challenge(model: object, *, seed: int) -> dict:
    """Measure the challenge model (an instance, or a class built with its defaults): its parameter count, the
    shape of its codes and images for a batch of digit-like images drawn from ``seed``, and the images' range."""
    from ..checking import call_student, describe
    from ..runtime import seeded
    from ._noise_probes import digit_like_images

    name = describe(type(model) if isinstance(model, nn.Module) else model)
    if not isinstance(model, nn.Module):
        with seeded(seed):
            model = call_student(model, what=f"{name}()")
    evidence: dict = {"name": name, "type": type(model).__name__}
    if not isinstance(model, nn.Module):
        return evidence
    evidence["parameters"] = sum(p.numel() for p in model.parameters())
    evidence["halves"] = [h for h in ("encoder", "decoder") if isinstance(getattr(model, h, None), nn.Module)]
    images = digit_like_images(8, seed)
    training = model.training
    device = next(model.parameters(), torch.empty(0)).device
    try:
        model.eval()
        with torch.no_grad():
            if len(evidence["halves"]) == 2:
                codes = call_student(model.encoder, images.to(device), what=f"{name}.encoder(images)")
                evidence["codes_shape"] = list(codes.shape) if isinstance(codes, torch.Tensor) else type(codes).__name__
            output = call_student(model, images.to(device), what=f"{name}(images)")
            if isinstance(output, torch.Tensor):
                evidence["output_shape"] = list(output.shape)
                evidence["output_range"] = [float(output.min()), float(output.max())] if output.numel() else []
    finally:
        model.train(training)
    return evidence


def judge_challenge(evidence: object, *, seed: int) -> dict:
    """Part "code size and parameter budget" of the open challenge (the error target is checked in full mode
    in the notebook: the grader runs fast mode, where nobody trains long enough)."""
    from .checks import CHALLENGE_PARTS

    part = CHALLENGE_PARTS[0].name
    if not isinstance(evidence, dict):
        return {part: "the check's evidence is malformed."}
    name, rules = evidence.get("name", "your model"), CHALLENGE
    if "parameters" not in evidence:
        return {part: f"{name} is a {evidence.get('type')}, not an nn.Module. Hint: define a class with "
                      "self.encoder and self.decoder like ConvAutoencoder, and pass the trained instance."}
    if evidence.get("halves") != ["encoder", "decoder"]:
        return {part: f"{name} needs the two halves self.encoder and self.decoder (the code is what the encoder "
                      "returns). Hint: assign both in __init__, as in ConvAutoencoder."}
    if evidence.get("codes_shape") != [8, rules.code_dim]:
        return {part: f"{name}.encoder turns 8 images into shape {evidence.get('codes_shape')}; the challenge's "
                      f"code is {rules.code_dim} numbers per image: (8, {rules.code_dim}). Hint: end the encoder "
                      f"with a Linear layer to {rules.code_dim} outputs."}
    if evidence.get("output_shape") != [8, 1, 28, 28]:
        return {part: f"{name} turns 8 images into shape {evidence.get('output_shape')}, not (8, 1, 28, 28). "
                      "Hint: the decoder must give images back at their size (see the transposed-convolution "
                      "formula of exercise 3)."}
    low, high = (evidence.get("output_range") or [0.0, 0.0])[:2]
    if not (0.0 <= low and high <= 1.0):
        return {part: f"{name}'s images range from {low:.3g} to {high:.3g}, outside [0, 1]. Hint: end the decoder "
                      "with a sigmoid, like the pixels."}
    count = evidence["parameters"]
    if not isinstance(count, int) or count > rules.max_parameters:
        return {part: f"{name} has {count:,} parameters, over the budget of {rules.max_parameters:,}. Hint: "
                      "lu.count_parameters on each layer shows where they are; the Linear layers next to the code "
                      "usually hold most of them: fewer or smaller feature maps before the code shrink them."}
    return {part: None}


def challenge_verdict(model: nn.Module, train_seconds: float, test_images: torch.Tensor) -> float:
    """After training: the challenge model's test MSE, with a printed verdict. In full mode it says whether the
    training kept to the time budget and the error reached the target, and what to change if not; it does not
    raise, so that Restart & Run All still reaches the lab's summary (the challenge's points come from the rules
    check alone). Fast mode trains too little to say. Returns the test MSE."""
    from ..checking import fail
    from ..runtime import fast_mode

    try:
        seconds = float(train_seconds)
    except (TypeError, ValueError):
        fail(f"train_seconds is {train_seconds!r}, not a number of seconds.",
             "Measure the training: start = time.perf_counter() before it, time.perf_counter() - start after.")
    mse = reconstruction_mse(model, test_images)
    summary = (f"{sum(p.numel() for p in model.parameters()):,} parameters, {seconds:.0f} s of training, "
               f"test MSE {mse:.4f} (target {CHALLENGE.target_mse}, budget {CHALLENGE.max_seconds:.0f} s)")
    if fast_mode():
        print(f"[fast mode: {summary}; the target and the budget are judged in full mode only]")
        return mse
    missed = []
    if not seconds <= CHALLENGE.max_seconds:
        missed.append(f"the training took {seconds:.0f} s, over the budget of {CHALLENGE.max_seconds:.0f} s: train "
                      "fewer steps, or make each step cheaper (fewer feature maps at full resolution)")
    if not mse <= CHALLENGE.target_mse:
        missed.append(f"the test MSE is {mse:.4f}, above the target of {CHALLENGE.target_mse}: choose on the "
                      "validation digits a learning rate, the steps the budget allows, and where the parameters go "
                      "(the Linear layers next to the code cost the most)")
    if missed:
        print(f"\u2718 Open challenge not met yet: {summary}.\n  " + ";\n  ".join(m[0].upper() + m[1:] for m in missed)
              + ".")
        return mse
    print(f"\u2714 Open challenge met: {summary}.")
    return mse
