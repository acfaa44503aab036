"""The article profiles (replicate/dvc.yaml) as CI runs them: every profile, one epoch, a small subset.

A tiny copy of the project (`study.make_workspace` plus `replicate/`) shrinks
every profile file and the study's params.yaml the same way: 300 images per
split, 1 epoch, seed 0 (ae-vs-vae-2d, whose claims compare two models per
seed, keeps seeds 0 and 1), the small evaluate, figures and classifier
settings of `study.tiny_params`, the CPU. Each profile keeps its own
architecture, likelihood, binarization, variants and latent sizes, and its
header comment (the stated setup the report quotes). Then `dvc repro
replicate/dvc.yaml` runs the profiles and, through the dependencies, the
study's stages they read (prepared data, classifiers) and those the report
compares with (the study's metrics, figures and report).

The fast tests at the top check the repository's own files: that each
profile shares the study's measurements and data split (so it reads the
study's prepared data and classifier, as it claims), and that the list of
profiles is the same in replicate/params.yaml, replicate/profiles/ and the
report stage's dependencies.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from study import REPO, git, make_workspace, run_in_process, tiny_params

from aebench.common.config import load_params, read_yaml
from aebench.common.layout import selected_keys
from aebench.reporting.claims import claims
from aebench.reporting.figures import figure_path, figures_for
from aebench.reporting.labels import variant_label

PROFILES = REPO / "replicate" / "profiles"
# What a profile shares with the study's params.yaml: the measurements, and the data split it reads.
SHARED_SECTIONS = ("classifier", "evaluate", "convergence", "claims", "figures", "mlflow")  # one convergence test
SPLIT_KEYS = ("source_dir", "split_seed", "val_size", "subset", "download_timeout")
SUBSET, EPOCHS = 300, 1
# Their claims are paired AE-VAE differences: two seeds give an interval.
TWO_SEEDS = {"ae-vs-vae-2d", "ae-vs-vae-2d-mlp"}
STUDY_VARIANTS = ("ae", "vae")  # the study's AE and VAE: 2 x 2 x 3 stages fewer than with its EM-AE


def profile_names() -> list[str]:
    return list(read_yaml(REPO / "replicate" / "params.yaml")["profiles"])


def mlp_counterparts() -> dict[str, str]:
    return dict(read_yaml(REPO / "replicate" / "params.yaml")["mlp_counterparts"])


def header(path: Path) -> str:
    """The leading comment lines of a profile file (the stated setup), each with its line break."""
    lines = path.read_text().splitlines(keepends=True)
    return "".join(lines[:next(i for i, line in enumerate(lines) if not line.startswith("#"))])


# ---------------------------------------------------------------- the repository's files (fast)


def test_a_profile_with_an_unconverged_model_is_marked_provisional_and_so_are_its_verdicts():
    from report_inputs import model

    from aebench.reporting.claims import Setup
    from aebench.reporting.report import convergence_line, profiles_ledger

    knn = {"latent.knn_accuracy": [0.5, 0.55]}
    failing = {**knn, "convergence.converged": [True, False], "convergence.flat": [True, False]}
    profile = Setup("ae-vs-vae-2d", [model("mnist", "ae", 2, (0, 1), per_seed=knn),
                                     model("mnist", "vae", 2, (0, 1), per_seed=failing)],
                    figures=Path("f"), compare=Path("c"), binarize="dynamic")
    assert convergence_line(profile) == (
        "Convergence: PROVISIONAL, 1 of 4 models fail the convergence test (VAE-2 seed 1); this profile's "
        "numbers and verdicts may still move with training.")
    study = Setup("default study", [model("mnist", "ae", 2, (0, 1), per_seed=knn)], figures=Path("f"),
                  compare=Path("c"), binarize="dynamic")
    assert convergence_line(study) == "Convergence: all 2 models of this profile pass the convergence test."
    separation = [c for c in claims(real_confidence={}) if c.name == "ae-vs-vae-2d-separation"]
    row = profiles_ledger(separation, {"ae-vs-vae-2d": profile}, study, max_seeds=10).rows[0]
    assert row[3].startswith("provisional (") and "VAE-2 seed 1 failed the convergence test" in row[4]
    assert row[5] == "not measured"  # the study lacks the VAE-2


@pytest.mark.parametrize("name", profile_names())
def test_profile_shares_the_study_measurements_and_data_split(name):
    study, profile = read_yaml(REPO / "params.yaml"), read_yaml(PROFILES / f"{name}.yaml")
    for section in SHARED_SECTIONS:
        assert profile[section] == study[section], f"{name}: {section} differs from params.yaml's"
    for key in SPLIT_KEYS:
        assert profile["data"][key] == study["data"][key], f"{name}: data.{key} differs from params.yaml's"
    # It reads the study's prepared data: its datasets are the study's.
    assert set(profile["datasets"]) <= set(study["datasets"]), name
    # And it states its setup in a header comment that the report quotes.
    assert len(header(PROFILES / f"{name}.yaml")) > 200, name
    load_params(PROFILES / f"{name}.yaml")  # a complete, valid params file


def test_the_profile_list_is_the_same_in_params_the_profiles_folder_and_the_report_deps():
    names = profile_names()
    assert len(names) == len(set(names))
    assert sorted(names) == sorted(path.stem for path in PROFILES.glob("*.yaml"))
    report = read_yaml(REPO / "replicate" / "dvc.yaml")["stages"]["report"]
    outputs = [dep.removeprefix("replicate/") for dep in report["deps"]
               if dep.startswith("replicate/") and dep != "replicate/profiles"]
    assert sorted(outputs) == sorted(names)
    assert "replicate/profiles" in report["deps"]
    assert {claim.article for claim in claims(real_confidence={})} <= set(names)


@pytest.mark.parametrize(("article", "mlp"), sorted(mlp_counterparts().items()))
def test_an_mlp_counterpart_differs_from_its_articles_profile_only_in_the_network(article, mlp):
    names = profile_names()
    assert article in names and mlp in names
    article_raw, mlp_raw = read_yaml(PROFILES / f"{article}.yaml"), read_yaml(PROFILES / f"{mlp}.yaml")
    assert {key for key in article_raw if article_raw[key] != mlp_raw.get(key)} == {"network"}
    assert set(article_raw) == set(mlp_raw)
    assert mlp_raw["network"]["arch"] == "mlp" and article_raw["network"]["arch"] != "mlp"
    # Its network is the study's: the verdicts compare the article's networks with the study's MLP.
    study = read_yaml(REPO / "params.yaml")["network"]
    assert {key: mlp_raw["network"][key] for key in ("arch", "hidden", "activation")} == {
        key: study[key] for key in ("arch", "hidden", "activation")}


# ---------------------------------------------------------------- the pipeline, tiny


def shrink(raw: dict, tiny: dict, *, seeds: list[int]) -> dict:
    """A params dict scaled down as `tiny` (study.tiny_params) is, keeping its own models."""
    raw = copy.deepcopy(raw)
    raw.update(seeds=seeds, device="cpu")
    raw["train"]["epochs"] = EPOCHS
    for section in SHARED_SECTIONS:
        raw[section] = copy.deepcopy(tiny[section])
    for key in SPLIT_KEYS:
        raw["data"][key] = tiny["data"][key]
    return raw


def study_params() -> dict:
    """The study's params.yaml, shrunk: both datasets (the profiles read them), its AE and VAE, latent 2."""
    tiny = tiny_params(seeds=[0], datasets=["mnist", "fashion_mnist"], latent_dims=[2])
    tiny["variants"] = {name: tiny["variants"][name] for name in STUDY_VARIANTS}
    tiny["data"]["subset"] = SUBSET
    tiny["train"]["epochs"] = EPOCHS
    return tiny


def add_replicate(root: Path, tiny: dict) -> dict[str, dict]:
    """replicate/ copied into the workspace with every profile shrunk; returns the shrunk profiles."""
    shutil.copytree(REPO / "replicate", root / "replicate", ignore=shutil.ignore_patterns("profiles"))
    (root / "replicate" / "profiles").mkdir()
    shrunk = {}
    for name in profile_names():
        source = PROFILES / f"{name}.yaml"
        shrunk[name] = shrink(read_yaml(source), tiny, seeds=[0, 1] if name in TWO_SEEDS else [0])
        (root / "replicate" / "profiles" / f"{name}.yaml").write_text(
            header(source) + "\n" + yaml.safe_dump(shrunk[name], sort_keys=False))
    git("add", "-A", cwd=root)
    git("commit", "-qm", "replicate profiles, shrunk", cwd=root)
    return shrunk


@pytest.fixture(scope="module")
def replicated(tmp_path_factory) -> Path:
    tiny = study_params()
    root = make_workspace(tmp_path_factory.mktemp("tiny-replicate") / "workspace", tiny)
    add_replicate(root, tiny)
    run_in_process(root, "replicate/dvc.yaml")
    git("add", "dvc.lock", "replicate/dvc.lock", cwd=root)
    git("commit", "-qm", "dvc.lock", cwd=root)
    return root


def profile_keys(root: Path, name: str):
    params = load_params(root / "replicate" / "profiles" / f"{name}.yaml")
    return params, selected_keys(params)


@pytest.mark.smoke
@pytest.mark.parametrize("name", profile_names())
def test_every_profile_has_its_models_metrics_and_figures(replicated, name):
    params, keys = profile_keys(replicated, name)
    out = replicated / "replicate" / name
    raw = read_yaml(REPO / "replicate" / "profiles" / f"{name}.yaml")
    assert {(k.dataset, k.variant, k.latent_dim) for k in keys} == {
        (d, v, z) for d in raw["datasets"] for v in raw["variants"] for z in raw["latent_dims"]}
    for key in keys:
        for seed in params.seeds:
            replicate = key.replicate(seed)
            assert replicate.path(out / "models", ".pt").is_file(), replicate.name
            assert replicate.path(out / "history", ".csv").is_file(), replicate.name
            metrics = json.loads(replicate.path(out / "metrics", ".json").read_text())
            assert (metrics["dataset"], metrics["variant"], metrics["latent_dim"], metrics["seed"]) == (
                key.dataset, key.variant, key.latent_dim, seed)
        for figure in figures_for(key):
            assert figure_path(out / "figures", key, figure).is_file(), (key, figure.name)


def checkpoint(root: Path, name: str, dataset: str, variant: str, latent_dim: int, seed: int = 0) -> dict:
    path = root / "replicate" / name / "models" / dataset / variant / f"latent-{latent_dim}" / f"seed-{seed}.pt"
    return torch.load(path, map_location="cpu", weights_only=True)


def latent_means(root: Path, name: str, dataset: str, variant: str, latent_dim: int, seed: int = 0) -> np.ndarray:
    path = root / "replicate" / name / "latent" / dataset / variant / f"latent-{latent_dim}" / f"seed-{seed}.npz"
    with np.load(path) as latent:
        return latent["mu"]


@pytest.mark.smoke
def test_each_profile_trained_its_own_architecture(replicated):
    # emae: the article's convolutional networks, its data loader dropping the last partial batch.
    for variant in ("vae", "emae"):
        config = checkpoint(replicated, "emae", "mnist", variant, 30)["config"]
        assert config["network"]["arch"] == "emae_conv" and config["train"]["drop_last"] is True
        assert config["train"]["batch_size"] == 250 and config["data"]["binarize"] == "none"
    assert checkpoint(replicated, "emae", "mnist", "emae", 30)["config"]["variant"]["gamma"] == 0.0

    # plain-ae: 784-36-784 with a ReLU code, so its codes are never negative; the 6x6 code row is drawn.
    config = checkpoint(replicated, "plain-ae", "mnist", "ae", 36)["config"]
    assert config["network"]["hidden"] == [] and config["network"]["code_activation"] == "relu"
    codes = latent_means(replicated, "plain-ae", "mnist", "ae", 36)
    assert codes.shape[1] == 36 and codes.min() >= 0.0
    three_rows = Image.open(replicated / "replicate" / "plain-ae" / "figures" / "mnist" / "ae" / "latent-36" /
                            "reconstructions.png")
    two_rows = Image.open(replicated / "replicate" / "fashion-vae" / "figures" / "fashion_mnist" / "vae" /
                          "latent-20" / "reconstructions.png")
    assert three_rows.height > two_rows.height  # original / code 6x6 / reconstruction against original / recon

    # vae-explained: latents 2 and 20, tanh between 500-unit layers, Xavier-uniform initialisation.
    for latent_dim in (2, 20):
        config = checkpoint(replicated, "vae-explained", "mnist", "vae", latent_dim)["config"]
        assert config["latent_dim"] == latent_dim
        assert config["network"] == {**config["network"], "hidden": [500, 500], "activation": "tanh",
                                     "init": "xavier_uniform"}
        assert latent_means(replicated, "vae-explained", "mnist", "vae", latent_dim).shape[1] == latent_dim

    # ae-vs-vae-2d: the book's MSE as a Gaussian likelihood, 2-D codes, both models; the book's convolutional
    # networks (3136 features before the heads), and the study's MLP in its counterpart.
    for variant in ("ae", "vae"):
        for name, arch in (("ae-vs-vae-2d", "gdl_conv"), ("ae-vs-vae-2d-mlp", "mlp")):
            saved = checkpoint(replicated, name, "mnist", variant, 2)
            config = saved["config"]
            assert config["network"]["arch"] == arch
            assert config["likelihood"] == {"name": "gaussian", "gaussian_std": 0.6261}
            assert config["train"]["batch_size"] == 32 and config["train"]["lr"] == 0.0005
            assert saved["state_dict"]["mean_head.weight"].shape == ((2, 3136) if arch == "gdl_conv" else (2, 128))

    # fashion-vae: a VAE with latent 20 on Fashion-MNIST, 784-256-128.
    config = checkpoint(replicated, "fashion-vae", "fashion_mnist", "vae", 20)["config"]
    assert config["dataset"] == "fashion_mnist" and config["network"]["hidden"] == [256, 128]
    assert config["likelihood"]["name"] == "bernoulli"


def table_rows(markdown: str, section: str) -> list[list[str]]:
    """The body rows of the first table after `section`'s heading, as cells."""
    body = markdown[markdown.index(section):]
    block = []
    for line in body[body.index("\n|") + 1:].splitlines():
        if not line.startswith("|"):
            break
        block.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip()[1:-1])])
    return block[2:]  # after the header and the separator


@pytest.mark.smoke
def test_report_opens_with_the_claims_ledger_and_quotes_each_profile(replicated):
    markdown = (replicated / "reports" / "replicate" / "report.md").read_text()
    html = (replicated / "reports" / "replicate" / "report.html").read_text()
    headings = re.findall(r"^(#+) (.*)$", markdown, flags=re.M)
    assert headings[0][0] == "#" and headings[1] == ("##", "Claims ledger")

    ledger = claims(real_confidence={})
    rows = table_rows(markdown, "## Claims ledger")
    assert len(rows) == len(ledger)
    plain = {"holds", "does not hold", "inconclusive"}
    # One epoch passes no convergence test: every measured verdict here is provisional, and decides nothing.
    verdicts = {f"provisional ({verdict})" for verdict in plain} | {"not measured"}
    for claim, row in zip(ledger, rows, strict=True):
        assert row[0] == claim.article, row
        assert row[3] in verdicts and row[5] in verdicts, row  # in the profile, in the default study
        # The profile ran every model its claims are about: never "no profile".
        assert row[4] != "no profile", row
    # The claims that need only a profile's own models are measured in it.
    by_claim = {claim.name: row for claim, row in zip(ledger, rows)}
    for name in ("emae-samples", "emae-split", "ae-vs-vae-2d-separation", "ae-vs-vae-2d-grid",
                 "vae-explained-interpolation", "vae-explained-disc", "plain-ae-no-overfitting",
                 "fashion-vae-garments", "fashion-vae-loss"):
        assert by_claim[name][3] != "not measured", by_claim[name]
    # In the tiny default study: the claims on its 2-D AE and VAE are measured. It has no EM-AE and no larger
    # VAE (left out to save time), and it binarizes its pixels (no grey-level loss to compare).
    unmeasured = {"emae-samples", "emae-split", "vae-explained-interpolation", "fashion-vae-loss"}
    assert {name for name, row in by_claim.items() if row[5] == "not measured"} == unmeasured

    # Whether the architecture decides each ae-vs-vae-2d claim: its verdict with the book's networks (as in the
    # ledger) and with the MLP, and the answer that follows from the two.
    decided = table_rows(markdown, "## Does the architecture decide the claim?")
    paired = [claim for claim in ledger if claim.article in mlp_counterparts()]
    assert [row[0] for row in decided] == [claim.article for claim in paired] and paired
    for claim, row in zip(paired, decided):
        assert row[2] == by_claim[claim.name][3], row
        assert row[2] in verdicts and row[4] in verdicts, row
        answer = "no" if row[2] == row[4] else "yes" if {row[2], row[4]} == {"holds", "does not hold"} else "unclear"
        assert row[6].split(":")[0] == answer, row

    # Then one section per profile, in replicate/params.yaml's order, quoting its stated setup (the header).
    sections = dict(part.split("\n", 1) for part in markdown.split("\n## ")[1:])
    assert [title for title in sections if title.startswith("Profile ")] == [f"Profile {n}" for n in profile_names()]
    for name in profile_names():
        section = sections[f"Profile {name}"]
        stated = " ".join(line.lstrip("# ").rstrip() for line in header(PROFILES / f"{name}.yaml").splitlines())
        assert stated in section, name
        params, keys = profile_keys(replicated, name)
        assert f"network {params.network.arch}" in section and f"likelihood {params.likelihood.name}" in section
        assert "Convergence: PROVISIONAL" in section, name  # one epoch: no model of it passes
        for key in keys:
            assert f"{variant_label(key.variant)}-{key.latent_dim} on" in section, (name, key)
        assert f">Profile {name}</h2>" in html
    # plain-ae's reconstructions figure is captioned with its 6x6 code row.
    assert "as a 6x6 grey image" in sections["Profile plain-ae"]
