"""The comparison table, the findings, and the report stage, on synthetic inputs whose answer is known.

Findings compare two variants only through their paired per-seed differences: fed a clear difference they
state an ordering with an interval that excludes zero; fed a difference inside the seed-to-seed noise they
say the two are not distinguishable. The stage runs on a synthetic workspace (metrics, histories, latent
arrays and small PNGs at the layout's paths, data-info and classifier JSONs, an MLflow store); the real
per-model figures are test_figures.py's, the real pipeline test_pipeline.py's.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO, seed_store, tiny_raw, write_params
from report_inputs import classifier_metrics, data_info, default_activity, history, model, png_bytes, write_model
from scipy import stats
from test_render import html_tables, markdown_tables

from aebench.common.errors import AebenchError
from aebench.common.layout import ModelKey
from aebench.reporting.columns import COLUMN_BY_KEY, MISSING
from aebench.reporting.compare import COMPARE_FIGURES
from aebench.reporting.findings import cell, column_finding, compare, comparison_table, findings, pair_verdict
from aebench.reporting.statistics import summarize

NLL = COLUMN_BY_KEY["test.nll_iw"]
PROBE = COLUMN_BY_KEY["probe.accuracy"]


def interval_text(differences, digits: int = 2) -> str:
    """The mean and 95% t-interval of paired differences, computed here with scipy, as the findings print it."""
    differences = np.asarray(differences, dtype=np.float64)
    low, high = stats.t.interval(0.95, len(differences) - 1, loc=differences.mean(), scale=stats.sem(differences))
    return f"{differences.mean():+,.{digits}f} [{low:+,.{digits}f}, {high:+,.{digits}f}]"


# --- the comparison table --------------------------------------------------------------------------


def test_a_cell_is_the_mean_and_sample_sd_over_seeds_in_the_columns_units():
    vae = model("mnist", "vae", 4, per_seed={"test.nll_iw": [90.0, 95.0, 100.0], "probe.accuracy": [0.9, 0.8, 0.85]})
    assert cell(vae, NLL) == "95.00 ± 5.00"
    assert cell(vae, PROBE) == "85.0 ± 5.0"  # a fraction shown in %
    assert cell(model("mnist", "ae", 4), NLL) == MISSING == "n/a"  # a deterministic code has no density


def test_table_has_one_row_per_model_with_its_seed_count():
    results = [model("mnist", "ae", 2), model("mnist", "vae", 2, per_seed={"test.nll_iw": [90.0, 95.0, 100.0]}),
               model("fashion_mnist", "emae", 4, seeds=(0, 1), per_seed={"test.nll_iw": [200.0, 202.0]})]
    header, rows = comparison_table(results, [NLL, PROBE])
    assert header == ["dataset", "model", "latent size D", "seeds n", "IW NLL (nats/image)", "probe accuracy (%)"]
    assert rows == [
        ["MNIST", "AE", "2", "3", "n/a", "50.0 ± 0.0"],
        ["MNIST", "VAE", "2", "3", "95.00 ± 5.00", "50.0 ± 0.0"],
        ["Fashion-MNIST", "EM-AE", "4", "2", "201.00 ± 1.41", "50.0 ± 0.0"],
    ]


# --- findings: a clear difference against one inside the noise ----------------------------------

SEED_LEVELS = np.array([90.0, 96.0, 101.0])  # each seed moves both variants alike (data order, binarization)


def pair(differences) -> tuple:
    """A VAE and an EM-AE at 3 seeds whose IW NLL differs by `differences` (EM-AE - VAE) at each seed."""
    vae = model("mnist", "vae", 4, per_seed={"test.nll_iw": SEED_LEVELS.tolist()})
    emae = model("mnist", "emae", 4, per_seed={"test.nll_iw": (SEED_LEVELS + np.asarray(differences)).tolist()})
    return vae, emae


CLEAR = [10.1, 9.9, 10.05]  # 10 nats apart, 0.1 of seed noise in the difference
NOISE = [2.3, -1.7, 0.3]  # 0.3 apart on average, with a seed-to-seed spread of 2: signs disagree


def test_a_clear_paired_difference_is_stated_as_an_ordering_with_its_interval():
    vae, emae = pair(CLEAR)
    comparison = compare(vae, emae, NLL)
    assert comparison.distinguishable and comparison.difference.low > 0
    assert comparison.sentence() == (f"EM-AE is higher than VAE (worse): EM-AE − VAE = {interval_text(CLEAR)} "
                                     "nats/image")
    finding = column_finding([emae, vae], NLL)  # ranked best (lowest) first whatever the input order
    assert finding == (f"IW NLL (nats/image), mean ± sd: VAE {cell(vae, NLL)}, EM-AE {cell(emae, NLL)}. "
                       f"EM-AE is higher than VAE (worse): EM-AE − VAE = {interval_text(CLEAR)} nats/image.")


def test_a_difference_inside_the_noise_is_not_distinguishable_and_gives_the_interval():
    vae, emae = pair(NOISE)
    comparison = compare(vae, emae, NLL)
    assert not comparison.distinguishable
    assert comparison.difference.low < 0 < comparison.difference.high
    assert comparison.sentence() == (f"VAE and EM-AE are not distinguishable with 3 seeds: EM-AE − VAE = "
                                     f"{interval_text(NOISE)} nats/image")
    assert interval_text(NOISE) == "+0.30 [-4.67, +5.27]"


def test_a_pair_verdict_names_the_better_model_only_when_no_metric_that_tells_them_apart_disagrees():
    probe_levels = [0.60, 0.65, 0.70]

    def models(nll_differences, probe_differences):  # EM-AE - VAE at each seed, per column
        vae = model("mnist", "vae", 4, per_seed={"test.nll_iw": SEED_LEVELS.tolist(), "probe.accuracy": probe_levels})
        emae = model("mnist", "emae", 4, per_seed={
            "test.nll_iw": (SEED_LEVELS + np.asarray(nll_differences)).tolist(),
            "probe.accuracy": (np.asarray(probe_levels) + np.asarray(probe_differences) / 100).tolist()})
        return vae, emae

    # EM-AE's NLL is higher (worse) and its probe accuracy lower (worse): the VAE wins everywhere it is told apart.
    verdict = pair_verdict(*models(CLEAR, [-x for x in CLEAR]), [NLL, PROBE])
    assert not verdict.split and len(verdict.for_a) == 2 and not verdict.for_b
    assert verdict.sentence() == ("VAE against EM-AE: VAE's samples are better than EM-AE's on every metric that "
                                  "tells them apart: IW NLL, probe accuracy.")
    # Worse NLL but a better probe: split, and no model is called better.
    split = pair_verdict(*models(CLEAR, CLEAR), [NLL, PROBE])
    assert split.split and split.sentence() == ("VAE against EM-AE: split: VAE's samples are better on IW NLL, "
                                                "EM-AE's on probe accuracy; no model is called better.")
    # One clear, one inside the noise: the clear one decides, the other is named as undecided.
    one = pair_verdict(*models(NOISE, [-x for x in CLEAR]), [NLL, PROBE])
    assert one.sentence() == ("VAE against EM-AE: VAE's samples are better than EM-AE's on every metric that tells "
                              "them apart: probe accuracy; not distinguishable on IW NLL.")
    none = pair_verdict(*models(NOISE, NOISE), [NLL, PROBE])
    assert none.sentence() == "VAE against EM-AE: not distinguishable on any metric used (IW NLL, probe accuracy)."


def test_a_split_sample_verdict_is_explained_by_what_each_metric_measures_and_its_ladder_numbers():
    from aebench.reporting.report import judged_column, split_explanation

    coverage, confidence = judged_column("samples", "coverage"), judged_column("samples", "mean_confidence")
    vae = model("mnist", "vae", 4, per_seed={"samples.prior.coverage": [0.80, 0.82, 0.81],
                                            "samples.prior.mean_confidence": [0.77, 0.78, 0.77]})
    emae = model("mnist", "emae", 4, per_seed={"samples.prior.coverage": [0.17, 0.16, 0.18],
                                              "samples.prior.mean_confidence": [0.81, 0.80, 0.81]})
    verdict = pair_verdict(vae, emae, [coverage, confidence])
    assert verdict.split
    text = split_explanation([verdict], classifier_metrics("mnist", {"coverage": True, "mean_confidence": True}))
    assert ("coverage, CNN judge measures coverage (ladder: real 0.100, blurred 0.200, patchwork 0.300, "
            "binarized 0.150, binarized patchwork 0.350)") in text
    assert "confidence, CNN judge measures fidelity (ladder: real 0.100" in text


def test_the_findings_of_the_two_studies_differ_as_their_numbers_do():
    clear = findings(list(pair(CLEAR)), [NLL])
    noise = findings(list(pair(NOISE)), [NLL])
    assert [s.title for s in clear] == [s.title for s in noise] == ["MNIST, 4-D latent"]
    assert "EM-AE is higher than VAE (worse)" in clear[0].sentences[0]
    assert "not distinguishable" not in clear[0].sentences[0]
    assert "VAE and EM-AE are not distinguishable with 3 seeds" in noise[0].sentences[0]
    assert "higher than" not in noise[0].sentences[0]


def test_the_same_means_with_unpaired_seed_noise_are_not_an_ordering():
    # Means 10 apart, but seeds do not move the two variants alike: the differences swing from -10 to +30.
    vae = model("mnist", "vae", 4, per_seed={"test.nll_iw": [90.0, 110.0, 100.0]})
    emae = model("mnist", "emae", 4, per_seed={"test.nll_iw": [120.0, 100.0, 110.0]})
    assert not compare(vae, emae, NLL).distinguishable


def test_a_higher_is_better_column_orders_best_first_and_says_worse():
    good = model("mnist", "vae", 2, per_seed={"probe.accuracy": [0.90, 0.92, 0.91]})
    poor = model("mnist", "emae", 2, per_seed={"probe.accuracy": [0.60, 0.61, 0.62]})
    finding = column_finding([poor, good], PROBE)
    differences = [-30.0, -31.0, -29.0]  # in %, EM-AE - VAE
    assert finding == (f"probe accuracy (%), mean ± sd: VAE 91.0 ± 1.0, EM-AE 61.0 ± 1.0. EM-AE is lower than VAE "
                       f"(worse): EM-AE − VAE = {interval_text(differences, 1)} %.")


def test_a_column_without_a_better_direction_gives_no_verdict():
    rate = COLUMN_BY_KEY["test.rate"]
    low = model("mnist", "vae", 4, per_seed={"test.rate": [5.0, 5.1, 4.9]})
    high = model("mnist", "emae", 4, per_seed={"test.rate": [15.0, 15.2, 14.9]})
    sentence = compare(high, low, rate).sentence()
    assert sentence.startswith("VAE is lower than EM-AE: VAE − EM-AE = ")
    assert "(better)" not in sentence and "(worse)" not in sentence


def test_a_model_without_the_column_is_listed_as_na_and_not_compared():
    ae = model("mnist", "ae", 4)
    vae, emae = pair(CLEAR)
    finding = column_finding([ae, vae, emae], NLL)
    assert finding.startswith(f"IW NLL (nats/image), mean ± sd: VAE {cell(vae, NLL)}, EM-AE {cell(emae, NLL)}; "
                              "n/a for AE. ")
    assert "AE −" not in finding.replace("EM-AE −", "")
    assert column_finding([ae, vae], NLL) is None  # one model with values: nothing to compare


def test_one_seed_states_no_ordering():
    vae = model("mnist", "vae", 4, seeds=(0,), per_seed={"test.nll_iw": [90.0]})
    emae = model("mnist", "emae", 4, seeds=(0,), per_seed={"test.nll_iw": [100.0]})
    assert compare(vae, emae, NLL).sentence() == ("VAE and EM-AE are not distinguishable with 1 seed: "
                                                  "EM-AE − VAE = +10.00 (one seed: no interval) nats/image")


def test_findings_have_one_section_per_dataset_and_latent_size():
    results = [model(d, v, z) for d in ("mnist", "fashion_mnist") for z in (2, 4) for v in ("ae", "vae")]
    assert [section.title for section in findings(results, [NLL, PROBE])] == [
        "MNIST, 2-D latent", "MNIST, 4-D latent", "Fashion-MNIST, 2-D latent", "Fashion-MNIST, 4-D latent"]


# --- the report stage on a synthetic workspace -----------------------------------------------------

VARIANTS = ("ae", "vae", "emae")
SIZES = (2, 4)
SEEDS = (0, 1, 2)
EPOCHS = 4
FAILED_METRIC, PASSED_METRIC = "precision", "recall"
HOST, COMMIT, SECONDS = "host-7f3a9c", "c0ffee" + "5" * 34, 4321.5  # the run-info record's facts
# VAE-4 at seed 1: a dimension drops below the threshold in the last epoch (its active set did not settle).
UNSETTLED = [[1.0, 0.5, 0.3, 0.2]] * (EPOCHS - 1) + [[1.0, 0.5, 0.3, 0.001]]


def synthetic_model(variant: str, size: int):
    rng = np.random.default_rng([VARIANTS.index(variant), size])
    stochastic = variant != "ae"
    per_seed: dict[str, list] = {
        "test.recon_bce": (rng.uniform(60, 160) + rng.normal(0, 1, 3)).tolist(),
        "probe.accuracy": rng.uniform(0.5, 0.9, 3).tolist(),
        "latent.knn_accuracy": rng.uniform(0.5, 0.9, 3).tolist(),
    }
    if stochastic:
        distortion = rng.uniform(80, 140) + rng.normal(0, 1, 3)
        rate = rng.uniform(5, 40) + rng.normal(0, 0.5, 3)
        per_seed |= {"test.distortion": distortion.tolist(), "test.rate": rate.tolist(),
                     "test.neg_elbo": (distortion + rate).tolist(), "test.nll_iw": (distortion + rate - 3).tolist()}
    histories = [history(size, train=[300.0, 200.0, 160.0, 150.0]) for _ in SEEDS]
    if (variant, size) == ("vae", 4):
        histories[1] = history(size, train=[300.0, 200.0, 160.0, 150.0], activity=UNSETTLED)
        # ... so its convergence test failed, as the evaluate stage would have written it
        per_seed |= {"convergence.converged": [True, False, True], "convergence.used_stable": [True, False, True],
                     "convergence.active_stable": [True, False, True],
                     "convergence.reason": ["passed", "active set changes over the last 2 epochs (4/3 units)",
                                            "passed"]}
    activities = [np.r_[UNSETTLED[-1]] if (variant, size, seed) == ("vae", 4, 1) else default_activity(size)
                  for seed in SEEDS]
    return model("mnist", variant, size, SEEDS, per_seed=per_seed, activities=activities, histories=histories)


def write_workspace(root: Path) -> Path:
    """Every input of the report stage under `root`, as a DVC workspace with its own MLflow store."""
    (root / ".dvc").mkdir(parents=True)
    write_params(root / "params.yaml", tiny_raw(seeds=list(SEEDS), latent_dims=list(SIZES)))
    for variant in VARIANTS:
        for size in SIZES:
            write_model(synthetic_model(variant, size), root)
    (root / "data" / "prepared").mkdir(parents=True)
    (root / "data" / "prepared" / "mnist.json").write_text(json.dumps(data_info("mnist")))
    passes = {"frechet_distance": False, FAILED_METRIC: False, PASSED_METRIC: True, "mean_confidence": True}
    # The second embedding disagrees on two metrics: the MLP judge fails mean_confidence and passes precision.
    second = {**passes, "mean_confidence": False, FAILED_METRIC: True}
    (root / "metrics" / "classifiers").mkdir(parents=True)
    (root / "metrics" / "classifiers" / "mnist.json").write_text(
        json.dumps(classifier_metrics("mnist", passes, second_passes=second)))
    record = {"stage": "train", "model": "mnist-vae-4-s0", "seconds": SECONDS, "device": "cpu",
              "mlflow_run_id": "f" * 32, "git_commit": COMMIT, "written": "2031-01-02T03:04:05+00:00",
              "host": {"hostname": HOST, "cpu": "Test CPU", "cpu_cores": 3, "memory_gib": 7.5}}
    (root / "runinfo" / "train").mkdir(parents=True)
    (root / "runinfo" / "train" / "mnist-vae-4-s0.json").write_text(json.dumps(record))
    seed_store(root)
    return root


def stage_args(root: Path) -> list[str]:
    return [
        "--prepared", str(root / "data" / "prepared"), "--history", str(root / "history"),
        "--metrics", str(root / "metrics"), "--latent", str(root / "latent"),
        "--figures", str(root / "reports" / "figures"), "--classifiers", str(root / "metrics" / "classifiers"),
        "--compare", str(root / "reports" / "compare"), "--markdown", str(root / "reports" / "report.md"),
        "--html", str(root / "reports" / "report.html"), "--runinfo", str(root / "runinfo"),
        "--timings", str(root / "reports" / "timings.md"), "--params", str(root / "params.yaml"),
    ]


def outputs(root: Path) -> dict[str, bytes]:
    return {name: (root / "reports" / name).read_bytes() for name in ("report.md", "report.html")}


def fake_comparison_figures(results, *, context, out_dir):
    """One small stand-in for the comparison figures (test_compare.py draws the real ones), drawn in no time."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "mnist-metrics.png"
    path.write_bytes(png_bytes())
    return {"mnist": [(COMPARE_FIGURES["metrics"], path)]}


@pytest.fixture(scope="module")
def stage(load_stage):
    return load_stage("report")


@pytest.fixture(scope="module")
def built(tmp_path_factory, stage):
    """The stage run as dvc.yaml runs it (in the workspace, relative paths), on the same inputs in two
    workspaces at once: in a fresh interpreter, which then says whether torch was imported, and in this
    process. Returns (first workspace, the fresh interpreter's output, second workspace)."""
    first = write_workspace(tmp_path_factory.mktemp("report") / "first")
    second = write_workspace(tmp_path_factory.mktemp("report") / "second")
    relative = stage_args(Path("."))
    probe = (f"import runpy, sys; sys.path.insert(0, {str(REPO / 'stages')!r}); "
             f"module = runpy.run_path({str(REPO / 'stages' / 'report.py')!r}); module['main']({relative!r}); "
             "print('torch imported:', 'torch' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    fresh = subprocess.Popen([sys.executable, "-c", probe], cwd=first, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.delenv("MLFLOW_TRACKING_URI", raising=False)
            patch.chdir(second)
            stage.main(relative)
        stdout, stderr = fresh.communicate(timeout=300)
    finally:
        fresh.kill()
    assert fresh.returncode == 0, stderr[-3000:]
    return first, subprocess.CompletedProcess(fresh.args, fresh.returncode, stdout, stderr), second


@pytest.fixture(autouse=True)
def no_tracking_server(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # the store named in params, always


def sections(markdown: str) -> list[str]:
    return re.findall(r"^## (.+)$", markdown, re.M)


def section(markdown: str, title: str) -> str:
    return markdown.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_the_stage_imports_no_torch(built):
    _, done, _ = built
    assert "torch imported: False" in done.stdout, done.stdout + done.stderr[-2000:]


def test_report_opens_with_the_title_then_the_claims_ledger_then_the_findings(built):
    root, _, _ = built
    markdown = (root / "reports" / "report.md").read_text()
    assert markdown.startswith("# aebench: AE, VAE, EM-AE on MNIST\n\n6 models (1 dataset x 3 variants x 2 latent "
                               "sizes), each trained with 3 seeds (0, 1, 2) for 4 epochs")
    assert sections(markdown)[:2] == ["Claims ledger", "Findings"]
    assert ("1 of 18 trained models FAIL the convergence test (VAE-4 on MNIST seed 1): every finding and claim "
            "that rests on them is marked provisional") in markdown.split("## Claims ledger")[0]
    assert re.findall(r"^### (.+)$", section(markdown, "Findings"), re.M) == [
        "MNIST, 2-D latent", "MNIST, 4-D latent", "Convergence of every model"]
    html = (root / "reports" / "report.html").read_text()
    assert html.index("<h1") < html.index('id="claims-ledger"') < html.index('id="findings"')
    assert html_tables(html)[0][0] == ["article", "claim", "decided by", "verdict here",
                                       "n, convergence, seeds needed", "numbers", "see"]


def test_ledger_gives_a_verdict_per_claim_and_links_its_figure(built):
    root, _, _ = built
    markdown = (root / "reports" / "report.md").read_text()
    ledger = markdown_tables(section(markdown, "Claims ledger"))[0]
    assert len(ledger) == 1 + 9
    verdicts = {row[1]: row[3] for row in ledger[1:]}
    plain = {"holds", "does not hold", "inconclusive", "not measured"}
    assert set(verdicts.values()) <= plain | {f"provisional ({verdict})" for verdict in plain}
    fashion = [row for row in ledger[1:] if row[0] == "fashion-vae"]
    assert [row[3] for row in fashion] == ["not measured", "not measured"]  # no Fashion-MNIST in this study
    # The synthetic histories fall together, validation 2% above training: plain-ae's claim holds.
    assert [row[3] for row in ledger[1:] if row[0] == "plain-ae"] == ["holds"]
    assert "[figure](compare/mnist-emae_mu_lines.png)" in markdown
    assert "[figure](figures/mnist/ae/latent-4/loss_curves.png)" in markdown


def test_table_holds_each_model_with_n_and_the_mean_and_sd_of_its_metrics_files(built):
    root, _, _ = built
    markdown = (root / "reports" / "report.md").read_text()
    header, *rows = markdown_tables(section(markdown, "Comparison table"))[0]
    assert [row[:4] for row in rows] == [["MNIST", {"ae": "AE", "vae": "VAE", "emae": "EM-AE"}[v], str(z), "3"]
                                         for z in SIZES for v in VARIANTS]
    nll = header.index("IW NLL (nats/image)")
    for row in rows:
        key = ModelKey("mnist", {"AE": "ae", "VAE": "vae", "EM-AE": "emae"}[row[1]], int(row[2]))
        values = [json.loads(key.replicate(s).path(root / "metrics", ".json").read_text())["test"]["nll_iw"]
                  for s in SEEDS]
        assert row[nll] == ("n/a" if values[0] is None else summarize(values).format(2))


def test_a_sample_metric_that_failed_its_validation_is_left_out_and_one_that_passed_is_in(built):
    root, _, _ = built
    markdown = (root / "reports" / "report.md").read_text()
    table, found = section(markdown, "Comparison table"), section(markdown, "Findings")
    header = markdown_tables(table)[0][0]
    for source in ("N(0, I) samples:", "GMM ex-post samples:"):
        assert f"{source} {FAILED_METRIC} (%)" not in header and f"{source} {FAILED_METRIC} (%)" not in found
        assert f"{source} {PASSED_METRIC} (%)" in header and f"{source} {PASSED_METRIC} (%)" in found
    # The ladder's table says why, and by how much: the pair it misorders, with both values.
    validation = section(markdown, "Which sample metrics can be trusted: the validation ladder")
    assert re.search(rf"\| MNIST \| cnn \(the judge\) \| {FAILED_METRIC} \| .* \| fails: blurred 0.200 vs "
                     rf"patchwork 0.150 \|", validation)
    assert re.search(rf"\| MNIST \| cnn \(the judge\) \| {PASSED_METRIC} \| .* \| passes \|", validation)
    assert re.search(rf"\| MNIST \| mlp \(second embedding\) \| mean_confidence \| .* \| fails: ", validation)
    assert f"another for {FAILED_METRIC}, mean_confidence" in validation


def test_the_frechet_distance_stays_in_the_table_marked_but_decides_nothing(built):
    root, _, _ = built
    markdown = (root / "reports" / "report.md").read_text()
    header = markdown_tables(section(markdown, "Comparison table"))[0][0]
    marked = "N(0, I) samples: Fréchet distance [mixed; fails the ladder] (squared feature units)"
    assert marked in header
    assert "Fréchet distance" not in section(markdown, "Findings")
    samples = section(markdown, "Sample quality: whose samples are better")
    assert f"N(0, I) samples: {PASSED_METRIC}, CNN judge (%), mean ± sd" in samples  # decided by what passed
    assert "Fréchet distance, CNN judge [mixed; fails the ladder]" in samples  # shown beside, with its result
    assert f"N(0, I) samples: {FAILED_METRIC}, CNN judge (%)" not in samples
    assert "Not used (MNIST, cnn (the judge)): `frechet_distance` fails: blurred 0.200 vs patchwork 0.150" in samples


def test_the_sample_section_decides_with_every_metric_judge_pair_that_passes_the_ladder_and_no_other(built):
    root, _, _ = built
    samples = section((root / "reports" / "report.md").read_text(), "Sample quality: whose samples are better")
    # precision fails in the CNN judge and passes in the MLP judge; mean_confidence the other way round.
    assert f"N(0, I) samples: {FAILED_METRIC}, MLP judge (%), mean ± sd" in samples
    assert f"N(0, I) samples: {FAILED_METRIC}, CNN judge" not in samples
    # A single judge's confidence passes here in the CNN judge: shown, marked, and not a pair used.
    assert ("N(0, I) samples: confidence, CNN judge [one judge's opinion; not decisive] (probability), mean ± sd"
            in samples)
    assert "N(0, I) samples: confidence, MLP judge" not in samples
    assert f"N(0, I) samples: {PASSED_METRIC}, MLP judge (%), mean ± sd" in samples
    assert (f"Not used (MNIST, cnn (the judge)): `{FAILED_METRIC}` fails: blurred 0.200 vs patchwork 0.150"
            in samples)
    assert "Not used (MNIST, mlp (second embedding)): `mean_confidence` fails: blurred 0.200 vs patchwork" in samples
    assert "paired 95% interval of the per-seed differences excludes zero" in samples  # the rule is stated
    assert "Verdicts, from the pairs used and their paired 95% intervals:" in samples
    verdicts = re.findall(r"^- (?:AE|VAE|EM-AE) against (?:AE|VAE|EM-AE): .*$", samples, flags=re.M)
    assert len(verdicts) == 3  # each pair once
    # Named as the pairs used are listed; the heading names the source once.
    assert not any("N(0, I) samples:" in line for line in verdicts)
    assert any(f"{PASSED_METRIC} (MLP judge)" in line for line in verdicts)
    assert (f"Pairs used: {PASSED_METRIC} (CNN judge), {FAILED_METRIC} (MLP judge), {PASSED_METRIC} (MLP judge). "
            "A single judge's confidence is shown but decides nothing, even where it passes the ladder "
            "(mean_confidence (CNN judge))") in samples


def test_the_two_judges_agreement_is_decisive_and_named_for_both_judges_while_one_judges_confidence_is_not():
    from aebench.reporting.report import decisive_pairs, passing_pairs, validation_section
    from aebench.reporting.render import Table

    passes = {"agreed_share": True, "mean_confidence": True, "coverage": True}
    metrics = {"mnist": classifier_metrics("mnist", passes, second_passes={"mean_confidence": True})}
    assert ("samples", "mean_confidence") in passing_pairs(metrics)
    assert decisive_pairs(metrics) == {("samples", "agreed_share"), ("samples", "coverage")}

    class Inputs:
        classifier_metrics = metrics

    table = next(block for block in validation_section(Inputs) if isinstance(block, Table))
    judges = {row[2]: row[1] for row in table.rows if row[1] != "mlp (second embedding)"}
    assert judges == {"agreed_share": "both judges", "mean_confidence": "cnn (the judge)", "coverage": "cnn (the judge)"}


def test_a_pair_is_used_only_when_it_passes_the_ladder_on_every_dataset():
    from aebench.reporting.report import passing_pairs, passing_quality_metrics

    mnist = classifier_metrics("mnist", {"coverage": True, "density": True, "precision": False},
                               second_passes={"coverage": True, "density": False, "precision": True})
    fashion = classifier_metrics("fashion_mnist", {"coverage": True, "density": True, "precision": False},
                                 second_passes={"coverage": False, "density": False, "precision": True})
    pairs = passing_pairs({"mnist": mnist, "fashion_mnist": fashion})
    assert pairs == {("samples", "coverage"), ("samples", "density"), ("samples_mlp_judge", "precision")}
    assert passing_quality_metrics({"mnist": mnist, "fashion_mnist": fashion}) == {"coverage", "density"}
    without_second = {key: value for key, value in fashion.items() if key != "second_judge"}
    assert passing_pairs({"mnist": mnist, "fashion_mnist": without_second}) == {("samples", "coverage"),
                                                                               ("samples", "density")}


def test_the_sample_section_shows_each_models_prior_samples_at_the_largest_size_once(built):
    root, _, _ = built
    markdown = (root / "reports" / "report.md").read_text()
    samples = section(markdown, "Sample quality: whose samples are better")
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", samples)
    assert links == [f"figures/mnist/{variant}/latent-{max(SIZES)}/samples.png" for variant in VARIANTS]
    embedded = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)
    assert all(embedded.count(link) == 1 for link in links)  # not embedded again per model: linked there
    figures = section(markdown, "Figures per model")
    assert all(f"[shown under Sample quality]({link})" in figures for link in links)


def test_a_sample_metric_that_failed_its_validation_is_not_in_the_methods_list(built):
    root, _, _ = built
    methods = section((root / "reports" / "report.md").read_text(), "How the numbers were computed")
    for source in ("prior", "gmm"):
        assert f"`samples.{source}.{PASSED_METRIC}`" in methods
    listed = [key for source in ("prior", "gaussian", "gmm") if f"`{(key := f'samples.{source}.{FAILED_METRIC}')}`"
              in methods]
    assert listed == [], f"{listed} are described under 'How the numbers were computed'"


def test_convergence_table_has_every_model_and_seed_and_names_the_failure(built):
    root, _, _ = built
    markdown = (root / "reports" / "report.md").read_text()
    table = section(markdown, "Findings").split("### Convergence of every model", 1)[1]
    assert "17 of 18 trained models pass the convergence test" in table
    rows = markdown_tables(table)[0]
    assert len(rows) == 1 + 18
    failed = [row for row in rows[1:] if row[-1] != "passed"]
    assert failed == [["VAE-4 on MNIST", "1", "3", "-0.050", "-0.1", "no", "no",
                       "FAILED: active set changes over the last 2 epochs (4/3 units)"]]


def test_claims_and_findings_resting_on_an_unconverged_model_are_provisional(built):
    root, _, _ = built
    markdown = (root / "reports" / "report.md").read_text()
    ledger = markdown_tables(section(markdown, "Claims ledger"))[0]
    rows = {row[0] + " " + row[1][:20]: row for row in ledger[1:]}
    split = next(row for row in ledger[1:] if row[1].startswith("The VAE's mu dimensions split"))
    assert split[3].startswith("provisional (")  # it reads the VAE-4, whose seed 1 failed
    assert split[4] == "n = 3; provisional: VAE-4 seed 1 failed the convergence test" or \
        split[4].startswith("n = 3; provisional: VAE-4 seed 1 failed the convergence test; seeds needed: ")
    plain_ae = next(row for row in ledger[1:] if row[0] == "plain-ae")
    assert plain_ae[3] == "holds" and plain_ae[4] == "n = 3"  # the AE-4 passed: decided, nothing to add
    assert rows  # every claim has its row
    four_d = section(markdown, "Findings").split("### MNIST, 4-D latent", 1)[1].split("###", 1)[0]
    two_d = section(markdown, "Findings").split("### MNIST, 2-D latent", 1)[1].split("###", 1)[0]
    assert "provisional (VAE seed 1 failed the convergence test)" in four_d
    assert "provisional" not in two_d


def test_report_holds_no_wall_time_host_or_commit_and_timings_page_does(built):
    root, _, _ = built
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    for name in ("report.md", "report.html"):
        text = (root / "reports" / name).read_text()
        for fact in (HOST, COMMIT, f"{SECONDS:,.1f}", "2031-01-02", "f" * 32, "Test CPU", head):
            assert fact not in text, (name, fact)
    timings = (root / "reports" / "timings.md").read_text()
    for fact in (HOST, COMMIT, f"{SECONDS:,.1f}", "Test CPU"):
        assert fact in timings, fact
    assert "`timings.md`" in (root / "reports" / "report.md").read_text()


def test_markdown_and_html_hold_the_same_tables(built):
    root, _, _ = built
    markdown = (root / "reports" / "report.md").read_text()
    html = (root / "reports" / "report.html").read_text()

    def plain(text: str) -> str:  # what the HTML shows of a Markdown cell: link text, code without backticks
        return re.sub(r"`([^`]+)`", r"\1", re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", text))

    from_markdown = [[[plain(c) for c in row] for row in table] for table in markdown_tables(markdown)]
    assert from_markdown == html_tables(html)
    assert len(from_markdown) == 7  # ledger, convergence, comparison, validation, methods, data files, packages


def test_figures_are_linked_in_markdown_and_embedded_in_html(built):
    root, _, _ = built
    markdown = (root / "reports" / "report.md").read_text()
    html = (root / "reports" / "report.html").read_text()
    from aebench.reporting.figures import figures_for

    per_model = sum(len(figures_for(ModelKey("mnist", v, z))) for v in VARIANTS for z in SIZES)
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)
    assert len(images) == per_model + len(COMPARE_FIGURES)  # and the comparison figures of the dataset
    assert all((root / "reports" / link).is_file() for link in images)
    assert html.count('<img src="data:image/png;base64,') == per_model + len(COMPARE_FIGURES)
    ids = set(re.findall(r'\sid="([^"]+)"', html))
    anchors = re.findall(r'href="#([^"]+)"', html)
    assert anchors and [a for a in anchors if a not in ids] == []  # every in-page link lands somewhere
    assert not re.search(r"""(src|href)=["'](?!data:|#)""", html), "the HTML refers to something outside itself"
    assert "98.76%" in markdown  # the classifier's accuracy, from its metrics JSON
    assert "`00000000000000000000000000000001`" in markdown  # a checksum from the data-info JSON


def test_two_builds_of_the_same_inputs_write_the_same_bytes(built):
    first, _, second = built
    assert outputs(first) == outputs(second)


def test_the_study_run_holds_the_report(built):
    root, _, _ = built
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("aebench").experiment_id
    studies = client.search_runs([experiment], "tags.`aebench.role` = 'study'")
    assert len(studies) == 1
    study = studies[0]
    assert study.info.status == "FINISHED" and study.info.run_name == "study"
    assert {a.path for a in client.list_artifacts(study.info.run_id)} == {"report.md", "report.html"}
    assert (study.data.tags["aebench.models"], study.data.tags["aebench.seeds"]) == ("6", "0 1 2")


# --- bad inputs: named, and nothing written ---------------------------------------------------------


@pytest.fixture
def workspace(tmp_path):
    return write_workspace(tmp_path / "workspace")


def test_a_missing_figure_is_named_and_the_previous_report_stays(workspace, stage, monkeypatch):
    monkeypatch.setattr(stage, "draw_comparison_figures", fake_comparison_figures)
    reports = workspace / "reports"
    (reports / "report.md").write_text("previous report\n")
    (reports / "report.html").write_text("<p>previous report</p>\n")
    missing = reports / "figures" / "mnist" / "emae" / "latent-4" / "interpolation.png"
    missing.unlink()  # found only after the comparison figures were drawn (into a temporary folder)
    with pytest.raises(AebenchError, match=re.escape(f"{missing}: figure not found")):
        stage.main(stage_args(workspace))
    assert (reports / "report.md").read_text() == "previous report\n"
    assert (reports / "report.html").read_text() == "<p>previous report</p>\n"
    assert sorted(p.name for p in reports.iterdir()) == ["figures", "report.html", "report.md"]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{workspace / 'mlflow.db'}")
    assert client.search_runs([client.get_experiment_by_name("aebench").experiment_id]) == []


def test_a_malformed_or_misplaced_metrics_file_is_named_and_nothing_is_written(workspace, stage):
    broken = ModelKey("mnist", "vae", 4).replicate(1).path(workspace / "metrics", ".json")
    metrics = json.loads(broken.read_text())
    del metrics["latent"]["active_units"]
    broken.write_text(json.dumps(metrics))
    with pytest.raises(AebenchError, match=re.escape(f"{broken}: latent.active_units: missing")):
        stage.main(stage_args(workspace))
    metrics["latent"]["active_units"], metrics["seed"] = 4, 2  # a valid file of another replicate
    broken.write_text(json.dumps(metrics))
    with pytest.raises(AebenchError, match=re.escape(
            f"{broken}: describes ('mnist', 'vae', 4, 2), expected ('mnist', 'vae', 4, 1)")):
        stage.main(stage_args(workspace))
    assert sorted(p.name for p in (workspace / "reports").iterdir()) == ["figures"]


def test_the_html_holds_no_path_of_the_workspace_when_the_stage_gets_absolute_paths(workspace, stage, monkeypatch):
    # A stage run from another folder gets absolute paths; the report must not depend on where the workspace
    # lies (a copy elsewhere, another user's home): the figures' anchors are named by the path the stage got.
    monkeypatch.setattr(stage, "draw_comparison_figures", fake_comparison_figures)
    stage.main(stage_args(workspace))
    html = (workspace / "reports" / "report.html").read_text()
    slug = re.sub(r"[^a-z0-9]+", "-", str(workspace).lower()).strip("-")
    assert str(workspace) not in html and slug not in html, re.findall(rf'id="[^"]*{slug}[^"]*"', html)[:2]
