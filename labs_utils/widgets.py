"""Sliders that redraw a figure, with a static fallback (Labs 1 and 3), and Lab 0's check that they work.

``slider_figure(draw, lr=(0.001, 0.1, 0.001, 0.01))`` first displays ``draw(**defaults)`` as an
ordinary figure output, so the notebook makes sense in a viewer (GitHub, nbviewer) and under
nbval. In a live notebook with ipywidgets, sliders appear below and redraw that same output in place.
Works with ipywidgets 7.7 (what Colab ships) and 8.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from matplotlib.figure import Figure

SliderSpec = tuple[float, float, float, float] | Sequence[Any] | Any


def _make_control(name: str, spec: SliderSpec):
    import ipywidgets as widgets

    if isinstance(spec, widgets.ValueWidget):
        return spec
    if isinstance(spec, tuple) and len(spec) == 4 and all(isinstance(v, (int, float)) for v in spec):
        low, high, step, value = spec
        if not low <= value <= high:
            raise ValueError(f"slider {name!r}: default {value} is outside [{low}, {high}]")
        cls = widgets.IntSlider if all(isinstance(v, int) for v in spec) else widgets.FloatSlider
        return cls(min=low, max=high, step=step, value=value, description=name, continuous_update=False,
                   readout_format=".3g" if cls is widgets.FloatSlider else "d")
    if isinstance(spec, (list, tuple)) and spec:
        return widgets.Dropdown(options=list(spec), value=spec[0], description=name)
    raise TypeError(f"control {name!r}: use (min, max, step, default), a list of options, or an ipywidgets widget")


def _default(spec: SliderSpec) -> Any:
    if hasattr(spec, "value"):
        return spec.value
    if isinstance(spec, tuple) and len(spec) == 4 and all(isinstance(v, (int, float)) for v in spec):
        return spec[3]
    return list(spec)[0]


def slider_figure(draw: Callable[..., Figure], **controls: SliderSpec) -> dict[str, Any]:
    """Display ``draw(**defaults)`` and, in a live notebook, sliders that redraw it in place.

    Returns the default values used for the static figure.
    """
    if not controls:
        raise ValueError("slider_figure needs at least one control, e.g. lr=(0.001, 0.1, 0.001, 0.01)")
    from IPython.display import display

    defaults = {name: _default(spec) for name, spec in controls.items()}
    handle = display(draw(**defaults), display_id=True)
    try:
        import ipywidgets as widgets
    except ImportError:  # the static figure above is the whole story
        return defaults
    sliders = {name: _make_control(name, spec) for name, spec in controls.items()}

    def redraw(_change: Any = None) -> None:
        if handle is not None:
            handle.update(draw(**{name: s.value for name, s in sliders.items()}))

    for slider in sliders.values():
        slider.observe(redraw, names="value")
    display(widgets.HBox(list(sliders.values()), layout=widgets.Layout(flex_flow="row wrap")))
    return defaults


def widget_support() -> str:
    """Lab 0: check that a slider notifies whoever watches it in this kernel; returns a one-line report.

    The slider's picture only exists in the browser, so the notebook asks the student to move the slider it
    showed; this checks the kernel half (ipywidgets importable, a moved slider calls its observer). Without
    ipywidgets the report says figures stay static, which every lab supports.
    """
    try:
        import ipywidgets as widgets
    except ImportError:
        return ("ipywidgets is not installed: figures stay static (every lab works without sliders; "
                "`pip install ipywidgets` adds them).")
    slider = _make_control("frequency", (1, 8, 1, 2))
    seen: list[Any] = []
    slider.observe(lambda change: seen.append(change["new"]), names="value")
    slider.value = 5
    assert seen == [5], (f"ipywidgets {widgets.__version__}: moving a slider to 5 notified its observer with "
                         f"{seen}, expected [5].\n"
                         "Hint: reinstall it: pip install --force-reinstall 'ipywidgets>=7.7.1'")
    return (f"ipywidgets {widgets.__version__}: sliders work in this kernel. Move the slider above: the curve "
            "should follow. No slider under the figure? This notebook viewer does not show widgets: the labs "
            "still work, with static figures.")
