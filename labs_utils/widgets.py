"""Sliders that redraw a figure, with a static fallback (Labs 1 and 3).

``slider_figure(draw, lr=(0.001, 0.1, 0.001, 0.01))`` first displays ``draw(**defaults)`` as an
ordinary figure output, so the notebook makes sense in a viewer (GitHub, nbviewer) and under
nbval. In a live notebook with ipywidgets, sliders appear below and redraw that same output in place.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Callable, Union

from matplotlib.figure import Figure

SliderSpec = Union[tuple[float, float, float, float], Sequence[Any], Any]


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
