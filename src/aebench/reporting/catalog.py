"""What the figures are called, in what order they appear, and their captions.

The figures stage draws them (`figures.py`, with torch) and the report stage
embeds them (without torch); both read this one registry, so a figure added
here gets its file name, its place in the report and its caption at once.
Captions are format strings filled from the metrics and params of the model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

MODEL_LABELS = {"ae": "AE", "vae": "VAE", "emae": "EM-AE"}
# What plays the role of the posterior mean: the AE has a deterministic code instead of a q(z|x).
CODE_POINTS = {"ae": "the code z = f(x)"}
MEAN_NAMES = {"ae": "code value z_u = f(x)_u"}
DEFAULT_CODE_POINT = "z = mu, the posterior mean"
DEFAULT_MEAN_NAME = "posterior mean E_q[z_u | x]"
DATASET_LABELS = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}
CLASS_NAMES = {
    "mnist": [str(digit) for digit in range(10)],
    "fashion_mnist": [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ],
}


def model_label(model: str) -> str:
    return MODEL_LABELS.get(model, model)


def dataset_label(dataset: str) -> str:
    return DATASET_LABELS.get(dataset, dataset)


def _always(latent_dim: int) -> bool:
    return True


def _two_dimensional(latent_dim: int) -> bool:
    return latent_dim == 2


@dataclass(frozen=True)
class FigureSpec:
    name: str  # file stem: <name>.png
    title: str
    caption: str  # str.format template, keys from `caption_facts`
    applies: Callable[[int], bool] = _always  # latent_dim -> drawn or not

    @property
    def filename(self) -> str:
        return f"{self.name}.png"


# In report order. Keys of the captions are documented in `caption_facts`.
MODEL_FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec(
        name="loss_curves",
        title="Loss curves",
        caption="Every training and validation term of the {model} objective per epoch, in nats per image "
        "(training terms are averaged over the epoch's batches, validation terms computed after it).",
    ),
    FigureSpec(
        name="reconstructions",
        title="Reconstructions",
        caption="Top row: the first {recon_images} test images ({test_view}); bottom row: their reconstructions "
        "decoded at {code_point}, shown as pixel means.",
    ),
    FigureSpec(
        name="samples",
        title="Samples",
        caption="{grid}x{grid} images decoded from z ~ N(0, I) drawn with seed {seed}, shown as pixel means.",
    ),
    FigureSpec(
        name="activity_lines",
        title="Posterior mean per dimension",
        caption="The {mean_name} of each of the {latent_dim} dimensions (one line each) across "
        "the first {activity_images} test images; coloured lines are the {active} active dimensions "
        "(A_u > {threshold}), grey ones the inactive.",
    ),
    FigureSpec(
        name="activity_bars",
        title="Activity per dimension",
        caption="A_u, the variance over the test set of the posterior mean of dimension u, on a log scale; "
        "the dashed line is the threshold {threshold}: {active} of {latent_dim} dimensions are active.",
    ),
    FigureSpec(
        name="activity_heatmap",
        title="Posterior means, images x dimensions",
        caption="Posterior means of the first {activity_images} test images (rows) in each of the "
        "{latent_dim} dimensions (columns); an inactive dimension is a column of one colour.",
    ),
    FigureSpec(
        name="latent_map",
        title="Latent map",
        caption="Posterior means of the first {latent_images} test images coloured by label; {projection}.",
    ),
    FigureSpec(
        name="manifold",
        title="Decoded manifold",
        caption="Images decoded from a {manifold_steps}x{manifold_steps} grid of z over "
        "[-{manifold_range}, {manifold_range}]^2 (z_1 left to right, z_2 bottom to top).",
        applies=_two_dimensional,
    ),
    FigureSpec(
        name="interpolation",
        title="Interpolation",
        caption="Left and right: two test images of different classes; between them, {interpolation_steps} "
        "images decoded at evenly spaced points on the straight line between their posterior means.",
    ),
)


def figures_for(latent_dim: int) -> list[FigureSpec]:
    """The figures drawn for a model with this latent size, in report order."""
    return [spec for spec in MODEL_FIGURES if spec.applies(latent_dim)]


def projection_phrase(latent_dim: int) -> str:
    """How the latent map reduces the latent to two axes (caption and axis labels agree)."""
    if latent_dim == 2:
        return "the latent itself, which is 2-D"
    if latent_dim == 1:
        return "the single latent dimension against the label"
    return f"projected on their first two principal components (PCA of the {latent_dim}-D means)"


@dataclass(frozen=True)
class CompareSpec:
    name: str  # file: <dataset>-<name>.png
    title: str
    caption: str  # keys: dataset, threshold, models

    def filename(self, dataset: str) -> str:
        return f"{dataset}-{self.name}.png"


COMPARE_FIGURES: tuple[CompareSpec, ...] = (
    CompareSpec(
        name="metrics",
        title="Metrics side by side",
        caption="Test-set metrics of {models} on {dataset}, one bar per latent size; "
        "n/a where a model defines no such quantity (the AE has no density).",
    ),
    CompareSpec(
        name="activity",
        title="Sorted activity profiles",
        caption="A_u of every dimension, sorted from most to least active, for {models} on {dataset} "
        "(one panel per latent size, log scale); the dashed line is the active-unit threshold {threshold}.",
    ),
)
