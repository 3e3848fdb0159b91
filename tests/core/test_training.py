"""labs_utils.training: the fit loop every lab uses."""
import pytest
import torch
from torch import nn

from labs_utils import data, training


def regression_loaders(seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(256, 4, generator=generator)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
    return data.tensor_loader(x, y, batch_size=32, shuffle=True, seed=seed), data.tensor_loader(x, y, batch_size=64)


def train_linear(epochs=5, seed=0, **kwargs):
    torch.manual_seed(seed)
    model = nn.Linear(4, 1)
    train, val = regression_loaders(seed)
    history = training.fit(model, train, nn.MSELoss(), torch.optim.SGD(model.parameters(), lr=0.05),
                           epochs=epochs, val_loader=val, progress=False, **kwargs)
    return model, history


def test_fit_lowers_the_loss_and_records_every_epoch():
    _, history = train_linear(epochs=5)
    assert history.epochs == 5 and len(history.val_loss) == 5
    assert history.train_loss[-1] < 0.1 * history.train_loss[0]
    assert len(history.step_loss) == 5 * 8
    assert history.seconds > 0


def fit_with_bar(bar_class, monkeypatch, capsys, progress=True):
    monkeypatch.setattr(training, "tqdm", bar_class)
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    train, val = regression_loaders()
    training.fit(model, train, nn.MSELoss(), torch.optim.SGD(model.parameters(), lr=0.05), epochs=2,
                 val_loader=val, progress=progress, desc="linear")
    return capsys.readouterr().out.strip().splitlines()


def test_a_notebook_bar_leaves_its_last_state_as_text(monkeypatch, capsys):
    """A saved notebook shows a tqdm widget as the text it had when it appeared (0%): fit prints how it ended."""
    pytest.importorskip("ipywidgets")
    from tqdm.notebook import tqdm as notebook_tqdm

    last = fit_with_bar(notebook_tqdm, monkeypatch, capsys)[-1]
    assert last.startswith("linear: 100%") and "16/16" in last and "epoch=2/2" in last and "val_loss=" in last
    assert fit_with_bar(notebook_tqdm, monkeypatch, capsys, progress=False) == []


def test_a_console_bar_prints_nothing_more(monkeypatch, capsys):
    from tqdm import tqdm as console_tqdm

    assert fit_with_bar(console_tqdm, monkeypatch, capsys) == []  # its last state is already on stderr


def test_fit_is_deterministic_for_a_fixed_seed():
    _, first = train_linear(seed=3)
    _, second = train_linear(seed=3)
    assert first.train_loss == second.train_loss


def test_fit_records_validation_metrics():
    torch.manual_seed(0)
    x = torch.randn(120, 2)
    y = (x[:, 0] > 0).long()
    loader = data.tensor_loader(x, y, batch_size=40)
    model = nn.Linear(2, 2)
    history = training.fit(model, loader, nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.5),
                           epochs=10, val_loader=loader, metrics={"accuracy": training.accuracy}, progress=False)
    assert len(history.val_metrics["accuracy"]) == 10
    assert history.val_metrics["accuracy"][-1] > 0.9


def test_batch_fn_lets_an_autoencoder_reuse_the_loop():
    torch.manual_seed(0)
    images = torch.rand(64, 1, 4, 4)
    loader = data.tensor_loader(images, torch.zeros(64), batch_size=16)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 16), nn.Unflatten(1, (1, 4, 4)))
    seen = []

    def pairs(batch):
        seen.append(batch)
        return training.reconstruction_batch(batch)

    history = training.fit(model, loader, nn.MSELoss(), torch.optim.Adam(model.parameters(), lr=1e-2),
                           epochs=3, batch_fn=pairs, progress=False)
    assert len(seen) == 12 and history.train_loss[-1] < history.train_loss[0]


def test_exploding_loss_stops_with_a_learning_rate_hint():
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    train, _ = regression_loaders()
    with pytest.raises(FloatingPointError, match="learning rate is probably too large"):
        training.fit(model, train, nn.MSELoss(), torch.optim.SGD(model.parameters(), lr=1e6), epochs=3,
                     progress=False)


@pytest.mark.parametrize("epochs", [-1, 1.5, True])
def test_bad_epochs_are_rejected(epochs):
    model = nn.Linear(4, 1)
    with pytest.raises(ValueError, match="epochs"):
        training.fit(model, regression_loaders()[0], nn.MSELoss(), torch.optim.SGD(model.parameters(), lr=0.1),
                     epochs=epochs, progress=False)


def test_fit_needs_a_module():
    with pytest.raises(TypeError, match="nn.Module"):
        training.fit(lambda x: x, [], nn.MSELoss(), None, epochs=1)


def test_empty_loader_is_reported():
    model = nn.Linear(4, 1)
    with pytest.raises(ValueError, match="empty train_loader"):
        training.fit(model, [], nn.MSELoss(), torch.optim.SGD(model.parameters(), lr=0.1), epochs=1, progress=False)


def test_evaluate_restores_training_mode_and_averages_per_sample():
    model = nn.Sequential(nn.Linear(1, 1, bias=False), nn.Dropout(0.5))
    nn.init.ones_(model[0].weight)
    x = torch.tensor([[1.0], [2.0], [3.0]])
    loader = data.tensor_loader(x, torch.zeros(3, 1), batch_size=2)  # batches of 2 and 1
    model.train()
    result = training.evaluate(model, loader, nn.MSELoss())
    assert model.training
    assert result["loss"] == pytest.approx((1 + 4 + 9) / 3)  # dropout off in eval mode
