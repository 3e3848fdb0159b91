"""What Lab 1's model probes measure on a student's autoencoder: its size, the operations each half runs, the
pixel range its decoder can reach, and whether a few training steps lower its loss.

Shared by the two autoencoder exercises and the open challenge. Each function measures and records; the
judges (in the exercise modules) decide.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from ..checking import fail
from ._calls import StudentCalls

MAX_OPS = 400  # operations recorded per half
CODE_SCALES = (1.0, 10.0, 100.0)  # codes near, far from and very far from 0: a sigmoid saturates both ways
BLACK, WHITE = 0.02, 0.98  # a decoder must reach pixels this dark and this bright on those codes


def model_size(model: nn.Module) -> int:
    """Every number ``model`` holds: its parameters, its buffers (BatchNorm's running statistics) and any other
    tensor attribute of its modules (plain tensors, with or without requires_grad), each storage counted once.

    The open challenge's budget counts this, so weights kept outside ``parameters()`` count too.
    """
    seen: set = set()
    total = 0

    def visit(value: Any, depth: int) -> None:
        nonlocal total
        if isinstance(value, torch.Tensor):
            try:
                storage = value.untyped_storage()
                key: Any = (str(value.device), storage.data_ptr(), storage.nbytes())
                size = storage.nbytes() // max(1, value.element_size())
            except (RuntimeError, NotImplementedError):  # no plain storage (sparse, meta, a subclass)
                key, size = id(value), value.numel()
            if key not in seen:
                seen.add(key)
                total += size
        elif isinstance(value, nn.Module):
            if id(value) not in seen:
                seen.add(id(value))
                visit(vars(value), 0)  # its parameters, buffers, submodules and other attributes
        elif isinstance(value, dict) and depth < 8:
            for item in list(value.values()):
                visit(item, depth + 1)
        elif isinstance(value, (list, tuple)) and depth < 8:
            for item in value:
                visit(item, depth + 1)

    visit(model, 0)
    return total


def build(cls: Any, name: str, calls: StudentCalls, **kwargs: Any) -> nn.Module:
    """A fresh model from the student's class (or from the class of an instance), with ``.encoder`` and
    ``.decoder`` submodules; AssertionError naming what is missing otherwise."""
    if isinstance(cls, nn.Module):  # an instance works too: the probe builds fresh ones from its class
        cls = type(cls)
    arguments = ", ".join(f"{k}={v}" for k, v in kwargs.items())
    model = calls(cls, what=f"{name}({arguments})", **kwargs)
    if not isinstance(model, nn.Module):
        fail(f"{name}({arguments}) returned a {type(model).__name__}, not an nn.Module.",
             f"Define `class {name}(nn.Module):` and call super().__init__() first in __init__.")
    for half in ("encoder", "decoder"):
        if not isinstance(getattr(model, half, None), nn.Module):
            fail(f"{name}({arguments}) has no submodule `.{half}` (found {type(getattr(model, half, None)).__name__}).",
                 "Assign the two halves in __init__: self.encoder = nn.Sequential(...), "
                 "self.decoder = nn.Sequential(...).")
    return model


def shape(value: Any) -> Any:
    """A tensor's shape as a list, else the name of what it is (evidence)."""
    return list(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__


CONVOLUTIONS = ("conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d")


def _stride(args: tuple, kwargs: dict) -> list[int]:
    stride = args[3] if len(args) > 3 else kwargs.get("stride", 1)
    stride = list(stride) if isinstance(stride, (tuple, list)) else [stride]
    return [int(s) for s in stride if isinstance(s, int)]


class _OpRecorder(TorchFunctionMode):
    """Records each torch function a module calls as [name, input shape, output shape, stride, transposed]
    (stride and transposed for convolutions only); functions called inside another are not recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[list] = []

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if len(self.ops) < MAX_OPS:
            name = str(getattr(func, "__name__", func))
            first_in = next((a for a in args if isinstance(a, torch.Tensor)), None)
            conv = name in CONVOLUTIONS
            self.ops.append([name, shape(first_in) if first_in is not None else [],
                             shape(out) if isinstance(out, torch.Tensor) else [],
                             _stride(args, kwargs) if conv else [], conv and "transpose" in name])
        return out


def record_ops(calls: StudentCalls, half: nn.Module, x: torch.Tensor, what: str) -> tuple[Any, list]:
    """``half(x)`` in eval mode without gradients, and the operations it ran (see :class:`_OpRecorder`)."""
    recorder = _OpRecorder()
    with torch.no_grad(), recorder:
        out = calls(half, x, what=what)
    return out, recorder.ops


def decoder_range(calls: StudentCalls, decoder: nn.Module, code_shape: tuple, g: torch.Generator, what: str) -> list:
    """[lowest, highest] pixel of ``decoder`` on 16 random codes of ``code_shape`` at each scale of CODE_SCALES
    (eval mode)."""
    low, high = float("inf"), float("-inf")
    with torch.no_grad():
        for scale in CODE_SCALES:
            images = calls(decoder, scale * torch.randn(16, *code_shape, generator=g), what=what)
            if not isinstance(images, torch.Tensor) or not images.is_floating_point() or images.numel() == 0:
                found = images.dtype if isinstance(images, torch.Tensor) else type(images).__name__
                fail(f"{what} returned {found}, not a batch of images.",
                     "The decoder must return a float tensor of images (N, 1, 28, 28).")
            low, high = min(low, images.min().item()), max(high, images.max().item())
    return [low, high]


def varies(batch: Any) -> bool:
    """Whether the items of a batch differ (a half whose output ignores its input does not)."""
    return isinstance(batch, torch.Tensor) and batch.dim() > 0 and len(batch) > 1 and bool((batch != batch[:1]).any())


def affine_outputs(calls: StudentCalls, half: Callable, u: torch.Tensor, v: torch.Tensor, what: str) -> list:
    """``half`` at u + v, u, v and 0 (an affine map's outputs give out(u + v) - out(u) - out(v) + out(0) = 0); at ten
    times these inputs when the four outputs are all equal, as where a ReLU is dead on every input near 0 (any
    map would look affine there)."""
    for scale in (1.0, 10.0):
        outputs = [calls(half, scale * t, what=what) for t in (u + v, u, v, torch.zeros_like(u))]
        if not all(isinstance(out, torch.Tensor) and isinstance(outputs[0], torch.Tensor)
                   and torch.equal(out, outputs[0]) for out in outputs):
            break
    return outputs


def reconstruction_loss(out: Any, x: torch.Tensor) -> torch.Tensor:
    """MSE between ``out`` and ``x``; an output with as many values as ``x`` is compared in ``x``'s shape, one of
    another image size with ``x`` resized to it (so a decoder whose shape is off still shows whether it trains)."""
    if not isinstance(out, torch.Tensor) or not out.is_floating_point():
        fail(f"the model returned {type(out).__name__ if not isinstance(out, torch.Tensor) else out.dtype}, "
             "not a float tensor of images.", "forward must return decoder(encoder(x)).")
    if out.shape != x.shape and out.numel() == x.numel():
        out = out.reshape(x.shape)
    if out.shape != x.shape:
        if out.dim() != 4 or out.shape[:2] != x.shape[:2]:
            fail(f"the model turns images {tuple(x.shape)} into {tuple(out.shape)}, so no reconstruction loss can "
                 "be computed.", "Fix the shapes first (see the part on shapes).")
        x = F.adaptive_avg_pool2d(x, out.shape[-2:])
    return F.mse_loss(out, x)


def warm_up() -> None:
    """Import what a first torch.optim optimizer imports (torch's compiler stack, seconds on a busy machine), so
    that it does not count against the time limit of the student's training."""
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])


def train(model: nn.Module, images: torch.Tensor, steps: int, batch_size: int, lr: float, g: torch.Generator,
          forward: Callable | None = None) -> list[float]:
    """Adam on the MSE of ``forward(x)`` (by default ``model.decoder(model.encoder(x))``) against ``x`` for
    ``steps`` batches drawn with ``g`` from ``images``, in training mode; the loss of every step, each before its
    update (torch's random state is the caller's)."""
    forward = forward or (lambda x: model.decoder(model.encoder(x)))
    model.train()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)  # see warm_up
    losses = []
    for _ in range(steps):
        x = images[torch.randint(0, len(images), (batch_size,), generator=g)] if batch_size < len(images) else images
        loss = reconstruction_loss(forward(x), x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def evaluate(model: nn.Module, images: torch.Tensor) -> float:
    """The MSE of ``model.decoder(model.encoder(images))`` in eval mode, batch by batch."""
    model.eval()
    with torch.no_grad():
        total = sum(reconstruction_loss(model.decoder(model.encoder(chunk)), chunk).item() * len(chunk)
                    for chunk in images.split(250))
    return total / len(images)


def gradients(model: nn.Module, images: torch.Tensor, forward: Callable) -> list[str]:
    """Names of the parameters that get no gradient from a loss on ``forward(images)`` (any output shape)."""
    model.zero_grad(set_to_none=True)
    out = forward(images)
    if isinstance(out, torch.Tensor) and out.is_floating_point() and out.requires_grad:
        out.float().square().mean().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    model.zero_grad(set_to_none=True)
    return missing
