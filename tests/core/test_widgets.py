"""labs_utils.widgets and the progress bars, with whichever ipywidgets is installed (8 here, 7.7.1 as in Colab
through ``test_the_widget_tests_pass_under_ipywidgets_7``, which reruns this file in .venv-ipywidgets7)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import ipywidgets
import pytest
import torch
import tqdm.notebook
from matplotlib.figure import Figure
from torch import nn

from labs_utils import plotting, training, widgets

ROOT = Path(__file__).resolve().parents[2]
IPYWIDGETS_7_PYTHON = ROOT / ".venv-ipywidgets7" / "bin" / "python"


@pytest.fixture
def shown(monkeypatch) -> list:
    """What the code under test displays (IPython.display.display), updates of display handles included."""
    shown: list = []

    class Handle:
        def update(self, obj):
            shown.append(obj)

    def fake_display(*objs, display_id=False, **kwargs):
        shown.extend(objs)
        return Handle() if display_id else None

    monkeypatch.setattr("IPython.display.display", fake_display)
    monkeypatch.setattr(tqdm.notebook, "display", fake_display)  # imported from IPython.display at load time
    return shown


def test_slider_figure_shows_the_default_figure_then_redraws_on_change(shown):
    drawn = []

    def draw(lr, kind):
        drawn.append((lr, kind))
        return plotting.plot_curves({kind: [lr, lr / 2]})

    defaults = widgets.slider_figure(draw, lr=(0.01, 1.0, 0.01, 0.1), kind=["sgd", "adam"])
    assert defaults == {"lr": 0.1, "kind": "sgd"} and drawn == [(0.1, "sgd")]
    assert isinstance(shown[0], Figure)
    box = shown[1]
    assert isinstance(box, ipywidgets.HBox)
    box.children[0].value = 0.5  # moving the slider redraws in place
    assert drawn[-1] == (0.5, "sgd") and isinstance(shown[-1], Figure)
    box.children[1].value = "adam"
    assert drawn[-1] == (0.5, "adam")


def test_each_kind_of_control_spec_gives_its_widget():
    assert isinstance(widgets._make_control("n", (1, 9, 1, 3)), ipywidgets.IntSlider)
    assert isinstance(widgets._make_control("lr", (0.0, 1.0, 0.1, 0.5)), ipywidgets.FloatSlider)
    assert isinstance(widgets._make_control("kind", ["a", "b"]), ipywidgets.Dropdown)
    given = ipywidgets.Checkbox(value=True)
    assert widgets._make_control("flag", given) is given
    with pytest.raises(TypeError, match="min, max, step, default"):
        widgets._make_control("x", 3)


def test_slider_figure_rejects_a_default_outside_the_range():
    with pytest.raises(ValueError, match="outside"):
        widgets._make_control("lr", (0.0, 1.0, 0.1, 2.0))


def test_without_ipywidgets_the_figure_is_static_and_nothing_else_is_shown(shown, monkeypatch):
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # import ipywidgets now raises ImportError
    defaults = widgets.slider_figure(lambda n: plotting.plot_curves({"x": [n, n]}), n=(1, 5, 1, 2))
    assert defaults == {"n": 2} and len(shown) == 1 and isinstance(shown[0], Figure)
    assert widgets.widget_support().startswith("ipywidgets is not installed: figures stay static")


def test_widget_support_reports_the_version_when_a_moved_slider_notifies():
    assert widgets.widget_support().startswith(f"ipywidgets {ipywidgets.__version__}: sliders work")


def test_widget_support_fails_with_a_hint_when_observers_are_not_called(monkeypatch):
    class DeafSlider:  # a broken install: moving the slider tells nobody
        value = 2

        def observe(self, handler, names=None):
            pass

    monkeypatch.setattr(widgets, "_make_control", lambda name, spec: DeafSlider())
    with pytest.raises(AssertionError, match="reinstall"):
        widgets.widget_support()


def test_notebook_progress_bar_is_a_widget_that_reaches_its_total(shown):
    with tqdm.notebook.tqdm(total=3, desc="training") as bar:
        for _ in range(3):
            bar.update(1)
            bar.set_postfix(loss="0.1")
    progress = [w for w in bar.container.children if isinstance(w, ipywidgets.FloatProgress)]
    assert progress and progress[0].value == 3 and progress[0].max == 3
    assert bar.container in shown


def test_fit_drives_the_notebook_progress_bar(shown, monkeypatch):
    bars = []

    def notebook_bar(*args, **kwargs):
        bars.append(tqdm.notebook.tqdm(*args, **kwargs))
        return bars[-1]

    monkeypatch.setattr(training, "tqdm", notebook_bar)  # what tqdm.auto picks inside a Jupyter kernel
    data = torch.utils.data.TensorDataset(torch.randn(32, 4), torch.randint(0, 2, (32,)))
    loader = torch.utils.data.DataLoader(data, batch_size=8)
    model = nn.Linear(4, 2)
    training.fit(model, loader, nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.1), epochs=2)
    (bar,) = bars
    progress = next(w for w in bar.container.children if isinstance(w, ipywidgets.FloatProgress))
    assert (progress.value, progress.max) == (8, 8) and "epoch=2/2" in bar.container.children[-1].value


def test_training_uses_tqdm_auto_so_jupyter_gets_the_widget_bar():
    source = Path(training.__file__).read_text(encoding="utf-8")
    assert "from tqdm.auto import tqdm" in source


@pytest.mark.slow
@pytest.mark.skipif(ipywidgets.__version__.startswith("7."), reason="this run already uses ipywidgets 7")
def test_the_widget_tests_pass_under_ipywidgets_7():
    if not IPYWIDGETS_7_PYTHON.exists():
        recipe = ("bash .ci/run builds it: a venv with ipywidgets==7.7.1 whose .pth file adds this interpreter's "
                  "site-packages (see the ipywidgets step there)")
        if os.environ.get("CI"):
            pytest.fail(f"CI must test the widgets under ipywidgets 7.7.1; create the venv: {recipe}")
        pytest.skip(f"no {IPYWIDGETS_7_PYTHON.parent.parent.name} here; to run this test: {recipe}")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    version = subprocess.run([str(IPYWIDGETS_7_PYTHON), "-c", "import ipywidgets; print(ipywidgets.__version__)"],
                             capture_output=True, text=True, env=env, check=True).stdout.strip()
    assert version == "7.7.1"
    # -n0: one process (the file's few tests do not repay starting pytest-xdist's workers, each importing torch)
    run = subprocess.run([str(IPYWIDGETS_7_PYTHON), "-m", "pytest", __file__, "-q", "-n0", "-p", "no:cacheprovider"],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and " failed" not in run.stdout
