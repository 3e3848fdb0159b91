"""The Lab 1 wing (labs_utils.lab1_autoencoders): the measurements, baselines and figures."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

import labs_utils as lu
from labs_utils import lab1_autoencoders as ae
from labs_utils.lab1_autoencoders import figures
from labs_utils.training import History


def images(n: int = 40, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


class Identity(nn.Module):
    """A trainable-looking 'autoencoder' that returns its input (for exact expectations)."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x):
        return x * self.scale


# ----------------------------------------------------------------------------------------------- training budget


def test_epochs_for_keeps_the_number_of_steps_whatever_the_data_size():
    assert ae.epochs_for(1_900, 4_000, 64) == 30  # bundled subset: 63 steps per epoch
    assert ae.epochs_for(1_900, 20_000, 64) == 6  # capped full MNIST: 313 steps per epoch
    assert ae.epochs_for(10, 60_000, 64) == 1  # never zero epochs


def test_epochs_for_rejects_non_positive_sizes():
    with pytest.raises(ValueError, match="steps must be a positive int, got 0"):
        ae.epochs_for(0, 100, 64)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        ae.epochs_for(10, 100, 2.5)


def test_count_parameters_counts_trainable_scalars_only():
    model = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    model[1].requires_grad_(False)
    assert lu.count_parameters(model) == 8


# ----------------------------------------------------------------------------------------------- applying models


def test_apply_in_batches_equals_one_call_and_restores_training_mode():
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 5), nn.Dropout(0.5))
    x = images(23)
    model.train()
    outputs = lu.apply_in_batches(model, x, batch_size=5)
    assert model.training
    model.eval()
    torch.testing.assert_close(outputs, model(x))  # eval mode: dropout off
    assert not outputs.requires_grad and outputs.device.type == "cpu"


def test_reconstruction_mse_is_the_pixel_mean():
    x = images(4)
    assert ae.reconstruction_mse(Identity(), x) == 0.0
    halve = Identity()
    halve.scale.data.fill_(0.5)
    assert ae.reconstruction_mse(halve, x) == pytest.approx(x.pow(2).mean().item() / 4)


# ----------------------------------------------------------------------------------------------- PCA


def low_rank_images(rank: int, n: int = 60) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    basis = torch.randn(rank, 784, generator=generator)
    return (torch.randn(n, rank, generator=generator) @ basis / 20 + 0.5).view(n, 1, 28, 28)


def test_pca_components_are_orthonormal_and_sorted_by_variance():
    pca = ae.fit_pca(images(100), max_components=10)
    gram = pca.components @ pca.components.T
    torch.testing.assert_close(gram, torch.eye(10), atol=1e-4, rtol=0)
    assert torch.all(pca.variances[:-1] >= pca.variances[1:])


def test_pca_rebuilds_data_of_lower_rank_exactly():
    x = low_rank_images(rank=5)
    pca = ae.fit_pca(x, max_components=8)
    assert pca.reconstruction_mse(x, 5) < 1e-10
    assert pca.reconstruction_mse(x, 4) > 1e-4


def test_pca_error_falls_with_more_components():
    x = images(80)
    pca = ae.fit_pca(x, max_components=20)
    errors = [pca.reconstruction_mse(x, k) for k in (1, 2, 5, 10, 20)]
    assert errors == sorted(errors, reverse=True)


def test_pca_error_equals_the_discarded_variance():
    x = images(50)
    pca = ae.fit_pca(x, max_components=49)
    centred = x.flatten(1) - x.flatten(1).mean(0)
    total = centred.pow(2).sum(1).mean().item() / 784
    kept = pca.variances[:10].sum().item() * (len(x) - 1) / len(x) / 784
    assert pca.reconstruction_mse(x, 10) == pytest.approx(total - kept, rel=1e-3)


def test_pca_encode_and_decode_shapes_and_range_of_k():
    x = images(30)
    pca = ae.fit_pca(x, max_components=6)
    assert pca.encode(x, 3).shape == (30, 3)
    assert pca.decode(pca.encode(x, 3)).shape == (30, 1, 28, 28)
    with pytest.raises(ValueError, match="between 1 and 6"):
        pca.encode(x, 7)


# ----------------------------------------------------------------------------------------------- PSNR and filters


def test_psnr_of_a_constant_error():
    clean = torch.full((3, 1, 28, 28), 0.5)
    assert ae.psnr(clean + 0.1, clean) == pytest.approx(20.0, abs=1e-4)  # MSE 0.01
    assert ae.psnr(clean, clean) == pytest.approx(100.0)


def test_psnr_averages_over_images():
    clean = torch.zeros(2, 1, 28, 28)
    estimate = torch.stack([torch.full((1, 28, 28), 0.1), torch.full((1, 28, 28), math.sqrt(0.001))])
    assert ae.psnr(estimate, clean) == pytest.approx((20 + 30) / 2, abs=1e-3)


def test_psnr_needs_matching_shapes():
    with pytest.raises(ValueError, match="same shape"):
        ae.psnr(torch.zeros(2, 1, 28, 28), torch.zeros(3, 1, 28, 28))


def naive_median(image: torch.Tensor, size: int) -> torch.Tensor:
    pad = size // 2
    padded = F.pad(image[None, None], (pad,) * 4, mode="reflect")[0, 0]
    out = torch.empty_like(image)
    for i in range(image.shape[0]):
        for j in range(image.shape[1]):
            out[i, j] = padded[i:i + size, j:j + size].flatten().median()
    return out


@pytest.mark.parametrize("size", [3, 5])
def test_median_filter_matches_a_pixel_by_pixel_median(size):
    x = images(2)
    filtered = ae.median_filter(x, size)
    for n in range(2):
        torch.testing.assert_close(filtered[n, 0], naive_median(x[n, 0], size))


def test_median_filter_removes_an_isolated_salt_pixel():
    x = torch.zeros(1, 1, 28, 28)
    x[0, 0, 10, 10] = 1.0
    assert ae.median_filter(x, 3).abs().max() == 0


def test_median_filter_needs_an_odd_window():
    with pytest.raises(ValueError, match="odd window"):
        ae.median_filter(images(1), 4)


def test_gaussian_filter_keeps_constant_images_and_spreads_a_point():
    flat = torch.full((2, 1, 28, 28), 0.3)
    torch.testing.assert_close(ae.gaussian_filter(flat, 1.0), flat)
    point = torch.zeros(1, 1, 28, 28)
    point[0, 0, 14, 14] = 1.0
    blurred = ae.gaussian_filter(point, 1.0)[0, 0]
    assert blurred.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert blurred[14, 14] == blurred.max()
    torch.testing.assert_close(blurred, blurred.T)  # isotropic
    assert blurred[14, 15] / blurred[14, 14] == pytest.approx(math.exp(-0.5), rel=1e-4)


def test_gaussian_filter_needs_a_positive_sigma():
    with pytest.raises(ValueError, match="sigma must be a positive finite number"):
        ae.gaussian_filter(images(1), 0.0)


def test_denoising_psnr_reports_the_input_the_best_filters_and_each_model():
    clean = torch.zeros(2, 1, 28, 28)
    noisy = clean.clone()
    noisy[:, 0, 5, 5] = noisy[:, 0, 20, 12] = 1.0  # two isolated salt pixels per image: MSE 2 / 784
    filters = ae.choose_filters(noisy, clean)
    assert filters["median filter"] in ae.MEDIAN_SIZES and filters["Gaussian filter"] in ae.GAUSSIAN_SIGMAS
    scores = ae.denoising_psnr(noisy, clean, {"identity": Identity()}, filters)
    assert list(scores) == ["noisy input", "median filter", "Gaussian filter", "identity"]
    assert scores["noisy input"] == pytest.approx(10 * math.log10(784 / 2), abs=1e-4)
    assert scores["identity"] == pytest.approx(scores["noisy input"])
    assert scores["median filter"] == pytest.approx(100.0)  # the median erases isolated pixels: a perfect copy
    assert scores["noisy input"] < scores["Gaussian filter"] < 100.0  # blurring spreads the salt, never erases it


def test_gaussian_filter_keeps_the_dtype_of_the_images():
    point = torch.zeros(1, 1, 28, 28, dtype=torch.float64)
    point[0, 0, 14, 14] = 1.0
    blurred = ae.gaussian_filter(point, 1.0)
    assert blurred.dtype == torch.float64 and blurred.device == point.device


# ----------------------------------------------------------------------------------------------- k-NN


def test_knn_is_perfect_on_separated_clusters_and_chance_on_swapped_labels():
    generator = torch.Generator().manual_seed(3)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    labels = torch.arange(3).repeat_interleave(20)
    codes = centres[labels] + 0.5 * torch.randn(60, 2, generator=generator)
    assert ae.knn_accuracy(codes, labels, codes + 0.1, labels, k=5) == 1.0
    assert ae.knn_accuracy(codes, labels, codes, (labels + 1) % 3, k=5) == 0.0


def test_knn_matches_a_brute_force_vote():
    generator = torch.Generator().manual_seed(4)
    train, test = torch.randn(50, 4, generator=generator), torch.randn(700, 4, generator=generator)
    train_labels, test_labels = torch.randint(0, 3, (50,), generator=generator), torch.randint(0, 3, (700,),
                                                                                              generator=generator)
    nearest = torch.cdist(test, train).argsort(dim=1)[:, :3]
    votes = train_labels[nearest].mode(dim=1).values
    expected = (votes == test_labels).float().mean().item()
    assert ae.knn_accuracy(train, train_labels, test, test_labels, k=3) == pytest.approx(expected)


def test_knn_needs_at_least_k_training_codes():
    with pytest.raises(ValueError, match="at least 5 training codes"):
        ae.knn_accuracy(torch.zeros(3, 2), torch.zeros(3), torch.zeros(1, 2), torch.zeros(1), k=5)


def test_markdown_table_formats_floats_and_keeps_text():
    table = lu.markdown_table(["a", "b"], [[1, 0.123456], ["x", "y"]], digits=2)
    assert table.splitlines() == ["| a | b |", "|---|---|", "| 1 | 0.12 |", "| x | y |"]


# ----------------------------------------------------------------------------------------------- figures


def test_plot_codes_draws_one_panel_per_code_and_a_digit_legend():
    codes = torch.randn(100, 2, generator=torch.Generator().manual_seed(5))
    labels = torch.arange(10).repeat(10)
    fig = ae.plot_codes({"a": codes, "b": -codes}, labels)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [str(d) for d in range(10)]
    assert all(ax.get_xlabel() == "code $z_1$" for ax in fig.axes)


def test_plot_codes_needs_two_dimensional_codes():
    with pytest.raises(ValueError, match=r"shaped \(N, 2\)"):
        ae.plot_codes({"a": torch.zeros(10, 3)}, torch.zeros(10))


def test_the_ten_digit_colours_are_distinct():
    assert len(set(ae.DIGIT_COLORS)) == 10


def test_plot_latent_grid_spans_the_codes_in_latent_units():
    decoder = nn.Sequential(nn.Linear(2, 784), nn.Sigmoid(), nn.Unflatten(1, (1, 28, 28)))
    codes = torch.randn(200, 2, generator=torch.Generator().manual_seed(6))
    fig = ae.plot_latent_grid(decoder, codes, n=5)
    (image,) = fig.axes[0].get_images()
    assert image.get_array().shape == (5 * 28, 5 * 28)
    left, right, bottom, top = image.get_extent()
    assert left < codes[:, 0].quantile(0.05) and right > codes[:, 0].quantile(0.95) and top > bottom
    with pytest.raises(ValueError, match="2-D code"):
        ae.plot_latent_grid(decoder, torch.zeros(5, 3))


def test_plot_mse_vs_code_size_draws_pca_and_each_model():
    x = images(40)
    fig = ae.plot_mse_vs_code_size(ae.fit_pca(x, 16), x, {"AE": {2: 0.05, 8: 0.03}, "conv": {8: 0.02}})
    assert [line.get_label() for line in fig.axes[0].get_lines()] == ["PCA", "AE", "conv"]


def test_plot_train_val_draws_both_losses_per_model():
    history = History(train_loss=[0.3, 0.2], val_loss=[0.35, 0.25])
    fig = ae.plot_train_val({"one": history, "two": history}, title="t")
    assert [ax.get_title() for ax in fig.axes] == ["training loss", "validation loss"]
    assert all(len(ax.get_lines()) == 2 for ax in fig.axes)


def test_plot_architecture_needs_a_code_layer_in_the_middle():
    assert isinstance(ae.plot_architecture((784, 64, 2, 64, 784)), Figure)
    with pytest.raises(ValueError, match="odd number of layers"):
        ae.plot_architecture((784, 2, 784, 5))


def test_denoising_grid_has_noisy_model_and_clean_rows():
    clean = images(4)
    fig = ae.denoising_grid(clean, {"identity": Identity()}, clean, title="t")
    labels = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()]
    assert labels == ["noisy\n100.0 dB", "identity\n100.0 dB", "clean"]


def capture_sliders(monkeypatch):
    calls = {}

    def fake_slider_figure(draw, **controls):
        calls.update(draw=draw, controls=controls)
        return {}

    monkeypatch.setattr(figures, "slider_figure", fake_slider_figure)
    return calls


def test_latent_explorer_offers_two_sliders_inside_the_code_range(monkeypatch):
    calls = capture_sliders(monkeypatch)
    decoder = nn.Sequential(nn.Linear(2, 784), nn.Sigmoid(), nn.Unflatten(1, (1, 28, 28)))
    codes = 3 * torch.randn(300, 2, generator=torch.Generator().manual_seed(7))
    ae.latent_explorer(decoder, codes, torch.arange(10).repeat(30))
    assert set(calls["controls"]) == {"z1", "z2"}
    for name, column in (("z1", 0), ("z2", 1)):
        low, high, step, default = calls["controls"][name]
        assert low <= codes[:, column].quantile(0.01) and high >= codes[:, column].quantile(0.99)
        assert low <= default <= high and 0 < step < high - low
    fig = calls["draw"](z1=0.0, z2=1.0)
    assert fig.axes[1].get_title() == "g(z) at z = (0.00, 1.00)"
    legend = [text.get_text() for text in fig.axes[0].get_legend().get_texts()]
    assert legend == [str(digit) for digit in range(10)] + ["chosen\npoint"]


def test_noise_explorer_draws_each_kind_and_needs_a_denoiser_per_kind(monkeypatch):
    calls = capture_sliders(monkeypatch)

    def blacken(x, level, generator=None):
        return x * (1 - level)

    clean = images(3)
    ae.noise_explorer({"dim": blacken}, {"dim": Identity()}, clean)
    assert calls["controls"]["kind"] == ["dim"]
    fig = calls["draw"](kind="dim", level=0.0)
    assert "100.0 dB" in fig.axes[0].get_ylabel()
    with pytest.raises(ValueError, match=r"(?s)no trained denoiser for the noise type\(s\) other.*ConvAutoencoder "
                                         r"\(exercise 3\).*corruptions \(exercise 4\)"):
        ae.noise_explorer({"dim": blacken, "other": blacken}, {"dim": Identity()}, clean)


def test_choose_filters_picks_the_setting_with_the_best_psnr():
    clean = torch.zeros(4, 1, 28, 28)
    clean[:, :, 8:20, 8:20] = 1.0  # a large square: a wide window only costs its corners
    noisy = clean.clone()
    noisy[:, 0, 2, 2] = 1.0
    chosen = ae.choose_filters(noisy, clean)
    for size in ae.MEDIAN_SIZES:
        assert ae.psnr(ae.median_filter(noisy, chosen["median filter"]), clean) >= ae.psnr(
            ae.median_filter(noisy, size), clean)
    for sigma in ae.GAUSSIAN_SIGMAS:
        assert ae.psnr(ae.gaussian_filter(noisy, chosen["Gaussian filter"]), clean) >= ae.psnr(
            ae.gaussian_filter(noisy, sigma), clean)


def test_fast_note_speaks_only_in_fast_mode(monkeypatch, capsys):
    monkeypatch.setenv("LABS_FAST", "1")
    ae.fast_note()
    assert "not the lab's results" in capsys.readouterr().out
    monkeypatch.setenv("LABS_FAST", "0")
    monkeypatch.delenv("CI", raising=False)
    ae.fast_note()
    assert capsys.readouterr().out == ""


# ----------------------------------------------------------------------------------------------- probes


class _PixelCodes(nn.Module):
    """An 'autoencoder' whose code is the image's mean brightness in four quadrants."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.decoder = nn.Sequential(nn.Linear(4, 784), nn.Sigmoid(), nn.Unflatten(1, (1, 28, 28)))

    def forward(self, x):
        return self.decoder(self.encoder(x))


def test_retrieval_finds_the_nearest_codes_closest_first():
    from labs_utils.lab1_autoencoders import probes

    memory = torch.stack([torch.full((1, 28, 28), v) for v in (0.0, 0.2, 0.5, 0.9)])
    queries = torch.stack([torch.full((1, 28, 28), 0.45), torch.full((1, 28, 28), 1.0)])
    assert probes.nearest_codes(_PixelCodes(), memory, queries, k=2).tolist() == [[2, 1], [3, 2]]
    assert isinstance(probes.retrieval(_PixelCodes(), memory, queries, k=2), Figure)


def test_non_digits_are_images_in_range_and_each_probe_draws_a_figure():
    from labs_utils.lab1_autoencoders import probes

    inputs = probes.non_digits(4)
    assert list(inputs) == ["uniform noise", "constant grey", "checkerboard", "bars"]
    assert all(x.shape == (4, 1, 28, 28) and 0 <= x.min() and x.max() <= 1 for x in inputs.values())
    assert all(set(board.unique().tolist()) == {0.0, 1.0} for board in inputs["checkerboard"])
    model = _PixelCodes()
    assert len(probes.out_of_distribution(model).axes) >= 8 * 4
    with_digits = probes.out_of_distribution(model, digits=torch.zeros(6, 1, 28, 28))
    assert len(with_digits.axes) >= 10 * 4  # two more rows: the digits and their reconstructions
    with torch.no_grad():
        digit_mse = model(torch.zeros(6, 1, 28, 28)).square().mean().item()
    labels = [ax.yaxis.label.get_text() for ax in with_digits.axes]
    assert labels[0] == "digits" and f"reconstruction\nMSE {digit_mse:.3g}\n(all 6)" in labels
    assert isinstance(probes.random_codes(model, torch.rand(20, 1, 28, 28)), Figure)
