"""Lab 1 — Autoencoders and denoising: everything the notebook ``lab1_autoencoders.ipynb`` needs, in one import.

    from labs_utils import lab1_autoencoders as lab1

- ``analysis``: the PCA baseline, MSE/PSNR/k-NN measurements, classical filters
- ``experiments``: BatchNorm on and off over seeds, the open challenge's verdict
- ``figures``: the lab's figures and slider explorers
- ``probes``: short probes of trained models (the last sigmoid's input, random codes, retrieval, non-digits)
- ``checks``: the exercise checks and the lab's ``GRADING`` table (each exercise in an ``exercise_*`` module)

Names load lazily: importing the checks does not import the figures.
"""
from .._lazy import lazy_module

_EXPORTS = {
    "Images": "analysis",
    "epochs_for": "analysis",
    "reconstruction_mse": "analysis",
    "PCA": "analysis",
    "fit_pca": "analysis",
    "psnr": "analysis",
    "median_filter": "analysis",
    "gaussian_filter": "analysis",
    "MEDIAN_SIZES": "analysis",
    "GAUSSIAN_SIGMAS": "analysis",
    "denoising_psnr": "analysis",
    "choose_filters": "analysis",
    "fast_note": "analysis",
    "knn_accuracy": "analysis",
    "Corruption": "analysis",
    "without_batchnorm": "experiments",
    "batchnorm_seeds": "experiments",
    "second_seed": "experiments",
    "seed_changes": "experiments",
    "CHALLENGE": "exercise_challenge",
    "model_size": "_measures",
    "challenge_verdict": "experiments",
    "training_clock": "experiments",
    "DIGIT_COLORS": "figures",
    "plot_interpolations": "figures",
    "plot_codes": "figures",
    "plot_train_val": "figures",
    "plot_mse_vs_code_size": "figures",
    "plot_latent_grid": "figures",
    "latent_explorer": "figures",
    "noise_explorer": "figures",
    "denoising_grid": "figures",
    "plot_architecture": "figures",
    "plot_sigmoid_inputs": "probes",
    "random_codes": "probes",
    "retrieval": "probes",
    "out_of_distribution": "probes",
    "non_digits": "probes",
}
__getattr__, __dir__, __all__ = lazy_module(__name__, ('analysis', 'experiments', 'figures', 'probes', 'checks'),
                                            _EXPORTS)
