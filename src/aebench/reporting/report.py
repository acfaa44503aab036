"""The report's content as blocks: claims ledger, findings, table, figures, methods, setup.

Every number placed here is read from a metrics JSON, a history CSV, a
data-info JSON, the classifier's metrics or params; the prose around them only
names what they are. `build_report` returns the block list that
`render.render_markdown` and `render.render_html` turn into the two files.
Wall times and machines are not here (they differ between two runs of the
same computation): they are in `reports/timings.md`.
"""

from __future__ import annotations

import io
import itertools
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from aebench.common.config import Params, load_params
from aebench.evaluation.metrics import METRIC_DOCS, SECOND_JUDGE_SAMPLES  # the schema module: no torch
from aebench.reporting.claims import Claim, Outcome, Setup, architecture_decides, assess
from aebench.reporting.columns import COLUMN_BY_KEY, COLUMNS, MetricColumn, passing_columns
from aebench.reporting.findings import PairVerdict, column_finding, comparison_table, findings, pair_verdict
from aebench.reporting.labels import dataset_label, model_label, variant_label
from aebench.reporting.render import Block, Bullets, Code, Figure, Heading, Paragraph, Table, figure_link
from aebench.reporting.results import ModelResults, ReportInputError

# What each sample metric rewards: the "how computed" section quotes this.
SAMPLE_METRIC_MEANING = {
    "precision": "fidelity: the share of samples that look like some real image (a sample inside the k-NN ball of "
                 "a real one); blind to missing modes",
    "recall": "coverage: the share of real images that some sample comes close to; blind to junk samples",
    "density": "fidelity: how many real images' k-NN balls hold a sample, per sample over k (Naeem et al. 2020); "
               "a junk sample inside one outlier's large ball counts 1/k, not 1 as in precision",
    "coverage": "diversity: the share of real images whose own k-NN ball holds some sample (Naeem et al. 2020); "
                "junk samples spread widely do not cover the data, as they do under recall",
    "confident_share": "one judge's recognisability: the share of samples the judge labels with probability >= 0.9, "
                       "i.e. plainly one digit or garment to that network; the mean confidence averages these with "
                       "the ambiguous ones",
    "agreed_share": "recognisability by two judges: the share of samples that both judges, a CNN and an MLP, name as "
                    "the same class with probability >= 0.9",
    "frechet_distance": "one number for both: distance between Gaussians fitted to the features of samples and "
                        "real images; a set of blurry but varied samples can beat sharp but narrow ones",
    "mean_confidence": "how confidently the classifier assigns samples to some class; high for sharp but "
                       "possibly repetitive samples",
    "class_entropy": "diversity of classes only: 1 when every class is drawn equally often, 0 when one is; says "
                     "nothing about quality",
    "top_class_share": "how much of the sample mass one class takes (the emae article's 'mostly 0')",
}

# What each sample-quality metric asks of a set of samples: whether each sample is plainly a digit or garment
# (fidelity), how much of the real data the samples reproduce (coverage), or both at once.
METRIC_PROPERTY = {"precision": "fidelity", "density": "fidelity", "mean_confidence": "fidelity",
                   "confident_share": "fidelity", "agreed_share": "fidelity", "recall": "coverage", "coverage": "coverage",
                   "frechet_distance": "fidelity and coverage"}
# The ladder's rungs that show whether a metric rewards sharpness or contrast rather than digits: quoted beside a
# split verdict, so a reader sees what each side's metric does with sharp and saturated non-digits.
CONTRAST_RUNGS = ("real", "blur", "patchwork", "binarized", "binarized_patchwork")


@dataclass(frozen=True)
class ReportInputs:
    params: Params
    results: list[ModelResults]
    data_infos: dict[str, dict[str, Any]]
    classifier_metrics: dict[str, dict[str, Any]]
    packages: dict[str, str]
    figures_dir: Path  # per-model PNGs: <figures_dir>/<dataset>/<variant>/latent-<D>/<name>.png
    compare_figures: dict[str, list[tuple[Any, Path, Path]]]  # dataset -> [(spec, final path, where it is now)]
    compare_context: Any  # compare.CompareContext: what the comparison captions quote
    claims: tuple[Claim, ...]
    study_setup: Setup
    timings_page: Path  # the unhashed page of wall times, linked from the setup section


def title(params: Params) -> str:
    variants = ", ".join(variant_label(v) for v in params.variants)
    datasets = " and ".join(dataset_label(d) for d in params.datasets)
    return f"aebench: {variants} on {datasets}"


def _count(items, noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


# Metrics section of the evaluation files -> the judge whose features and labels it holds, as the report names it.
JUDGE_NAMES = {"samples": "CNN judge", SECOND_JUDGE_SAMPLES: "MLP judge"}


def _judges(metrics: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(metrics section, judge label, its ladder checks by metric) for the judge and, when recorded, the second."""
    judges = [("samples", f"{metrics.get('architecture', 'cnn')} (the judge)", metrics["sample_metric_validation"])]
    if "second_judge" in metrics:
        second = metrics["second_judge"]
        judges.append((SECOND_JUDGE_SAMPLES, f"{second['architecture']} (second embedding)",
                       second["sample_metric_validation"]))
    return judges


def passing_pairs(classifier_metrics: dict[str, dict[str, Any]]) -> set[tuple[str, str]]:
    """The (metrics section, sample-quality metric) pairs that ranked the ladder correctly on every dataset, each
    in the features of the judge its section holds (JUDGE_NAMES). A dataset without a judge's ladder passes none
    of that judge's pairs."""
    per_dataset = [{(section, name) for section, _, checks in _judges(metrics)
                    for name, check in checks.items() if check["passes"]} for metrics in classifier_metrics.values()]
    return set.intersection(*per_dataset) if per_dataset else set()


# One judge's confidence in samples, compared with no real image: a network can be confident on inputs unlike its
# training data (the CNN judge is, on shuffled Fashion-MNIST garments), and samples are such inputs, so passing the
# ladder does not make it safe on them. Shown with its ladder result, never decisive: recognisability is decided
# by the two judges' agreement (`agreed_share`), which one network's quirk cannot raise.
JUDGE_OPINIONS = ("mean_confidence", "confident_share")
BOTH_JUDGES = ("agreed_share",)  # measured by the two judges together; held in the judge's section


def decisive_pairs(classifier_metrics: dict[str, dict[str, Any]]) -> set[tuple[str, str]]:
    """`passing_pairs` that may decide a finding: not a single judge's opinion (JUDGE_OPINIONS)."""
    return {(section, name) for section, name in passing_pairs(classifier_metrics) if name not in JUDGE_OPINIONS}


def passing_quality_metrics(classifier_metrics: dict[str, dict[str, Any]]) -> set[str]:
    """The sample-quality metrics that ranked the controlled degradations correctly on every dataset, in the
    (first) judge's features, and may decide: what the comparison table and the findings show."""
    return {name for section, name in decisive_pairs(classifier_metrics) if section == "samples"}


def judged_column(section: str, metric: str, *, source: str = "prior") -> MetricColumn:
    """The column of `metric` of `source` samples as the judge of `section` measures it."""
    column = COLUMN_BY_KEY[f"samples.{source}.{metric}"]
    name = column.name if metric in BOTH_JUDGES else f"{column.name}, {JUDGE_NAMES[section]}"
    return replace(column, key=f"{section}.{source}.{metric}", name=name)


def reported_columns(classifier_metrics: dict[str, dict[str, Any]]) -> list[MetricColumn]:
    """COLUMNS without the sample-quality metrics that failed their validation: what findings are made of."""
    return passing_columns(passing_quality_metrics(classifier_metrics))


# Shown in the table whatever its ladder result, with the result in its header: the one number most
# papers quote, a mix of fidelity and coverage; no finding is made from it unless it passes.
MIXED_METRICS = ("frechet_distance",)


def table_columns(classifier_metrics: dict[str, dict[str, Any]]) -> list[MetricColumn]:
    """`reported_columns` and the mixed measures that failed the ladder, their header saying so."""
    reported = reported_columns(classifier_metrics)
    return [c if c in reported else replace(c, name=f"{c.name} [mixed; fails the ladder]")
            for c in COLUMNS if c in reported or c.quality_metric in MIXED_METRICS]


def _read_png(path: Path) -> bytes:
    if not path.is_file():
        raise ReportInputError(f"{path}: figure not found (run the figures stage first)")
    return path.read_bytes()


# --- sections -------------------------------------------------------------------------------


def introduction(inputs: ReportInputs) -> list[Block]:
    params, results = inputs.params, inputs.results
    epochs = sorted({len(r.first.history) for r in results})
    return [
        Heading(title(params), 1),
        Paragraph(
            f"{len(results)} models ({_count(params.datasets, 'dataset')} x {_count(params.variants, 'variant')} x "
            f"{_count(params.latent_dims, 'latent size')}), each trained with {_count(params.seeds, 'seed')} "
            f"({', '.join(map(str, params.seeds))}) for {' / '.join(map(str, epochs))} epochs and evaluated on the "
            "test split. Every number is read from the stage outputs `metrics/<dataset>/<variant>/latent-<D>/"
            "seed-<s>.json` and `history/...csv`; tables give the mean ± sample standard deviation over the seeds "
            "(n stated), and two variants are ordered only when the 95% t-interval of their paired per-seed "
            "difference excludes zero. Losses and likelihoods are in nats per image (summed over the 784 pixels, "
            "averaged over images)."
        ),
        Paragraph(convergence_summary(results)),
    ]


def _unconverged(results: list[ModelResults], *, on_dataset: bool) -> tuple[list[str], int]:
    """The trained models that fail their convergence test ("VAE-30 seed 1"), and how many were trained."""
    failed = [f"{model_label(r.key, on_dataset=on_dataset)} seed {seed}"
              for r in results for seed in r.unconverged_seeds]
    return failed, sum(len(r.replicates) for r in results)


def convergence_summary(results: list[ModelResults]) -> str:
    """How many trained models pass the convergence test: the numbers below describe trained models only then."""
    failed, total = _unconverged(results, on_dataset=True)
    if not failed:
        return (f"All {total} trained models pass the convergence test (\"Convergence of every model\", under the "
                "findings): the numbers below describe trained models, not ones still moving.")
    return (f"{len(failed)} of {total} trained models FAIL the convergence test ({', '.join(failed)}): every "
            "finding and claim that rests on them is marked provisional (\"Convergence of every model\", under "
            "the findings).")


def _assessed(claim: Claim, setup: Setup, *, max_seeds: int) -> tuple[str, str, str, str]:
    """A claim in a setup: its verdict, the note beside it (n, convergence, seeds needed), numbers, figure link."""
    assessment = assess(claim, setup, max_seeds=max_seeds)
    outcome = assessment.outcome
    link = figure_link("figure", outcome.figure) if outcome.figure is not None else ""
    return assessment.verdict, assessment.note(), outcome.numbers, link


def ledger_section(inputs: ReportInputs) -> list[Block]:
    max_seeds = inputs.params.claims.max_seeds
    rows = [[claim.article, claim.says, claim.measure, *_assessed(claim, inputs.study_setup, max_seeds=max_seeds)]
            for claim in inputs.claims]
    return [
        Heading("Claims ledger", 2),
        Paragraph("What the source articles claim, as measurable statements, evaluated in this study's setup "
                  "(each article's own setup runs as a profile: `make replicate` writes `reports/replicate/"
                  "report.html` with both verdicts side by side). Verdicts: holds, does not hold, inconclusive "
                  "(seeds disagree, the interval contains zero, or a single seed), not measured. A claim is "
                  "decided (holds or does not hold) only when the verdict is decisive at its n, the seeds of the "
                  "models it reads. A verdict resting on a model that failed its convergence test is marked "
                  "provisional and decides nothing: that model's numbers may still move with training. Seed rule "
                  "for a claim that is not decisive: taking the observed mean and spread of its paired differences "
                  "as the truth, the ledger states the smallest number of seeds whose 95% t-interval would clear "
                  f"zero, up to claims.max_seeds = {max_seeds}; the study decides such a claim only after "
                  "training that many seeds (`seeds` in params), never by reading the one it has more leniently."),
        Table(header=["article", "claim", "decided by", "verdict here", "n, convergence, seeds needed", "numbers",
                      "see"], rows=rows, label_columns=7, css_class="ledger"),
    ]


def profiles_ledger(claim_list, profiles: dict[str, Setup], study: Setup, *, max_seeds: int) -> Table:
    """Each claim's verdict in its article's profile (when one is reported) and in the default study."""
    rows = []
    for claim in claim_list:
        cells = [claim.article, claim.says, claim.measure]
        for setup in (profiles.get(claim.article), study):
            if setup is None:
                cells += ["not measured", "no profile"]
                continue
            verdict, note, numbers, link = _assessed(claim, setup, max_seeds=max_seeds)
            cells += [verdict, numbers + (f" [{note}]" if note else "") + (f" ({link})" if link else "")]
        rows.append(cells)
    return Table(header=["article", "claim", "decided by", "verdict in the article's profile", "numbers (profile)",
                         "verdict in the default study", "numbers (study)"], rows=rows, label_columns=7,
                 css_class="ledger")


def architecture_table(claim_list, profiles: dict[str, Setup], counterparts: dict[str, str], *,
                       max_seeds: int) -> Table:
    """Per claim of an article with an MLP counterpart: its verdict with each network, and whether they differ.

    Verdicts are the ledger's: one resting on an unconverged model is provisional, and decides nothing here either.
    """
    rows = []
    for claim in claim_list:
        if claim.article not in counterparts:
            continue
        article = assess(claim, profiles[claim.article], max_seeds=max_seeds)
        mlp = assess(claim, profiles[counterparts[claim.article]], max_seeds=max_seeds)
        stated = [Outcome(a.verdict, a.outcome.numbers) for a in (article, mlp)]
        rows.append([claim.article, claim.says, stated[0].verdict, stated[0].numbers, stated[1].verdict,
                     stated[1].numbers, architecture_decides(*stated)])
    return Table(header=["article", "claim", "verdict with the article's networks", "numbers (article's networks)",
                         "verdict with the study's MLP", "numbers (MLP)", "does the architecture decide it?"],
                 rows=rows, label_columns=7, css_class="ledger")


def findings_section(inputs: ReportInputs) -> list[Block]:
    columns = reported_columns(inputs.classifier_metrics)
    blocks: list[Block] = [
        Heading("Findings", 2),
        Paragraph("Per dataset and latent size, each metric's variants from best to worst (mean ± sd over seeds), "
                  "and each neighbouring pair compared through its paired per-seed difference: the mean "
                  "difference with its 95% Student t-interval [low, high] (n − 1 degrees of freedom). An ordering "
                  "is stated only when the interval excludes zero."),
    ]
    return blocks + findings_blocks(inputs.results, columns) + convergence_blocks(inputs)


def findings_blocks(results: list[ModelResults], columns: list[MetricColumn]) -> list[Block]:
    return [block for section in findings(results, columns)
            for block in (Heading(section.title, 3), Bullets(section.sentences))]


def convergence_blocks(inputs: ReportInputs) -> list[Block]:
    """Every model's convergence test, seed by seed, as written into its metrics by the evaluate stage."""
    rows = []
    for results in inputs.results:
        for replicate in results.replicates:
            test = replicate.metrics["convergence"]
            slope = "n/a" if test["slope"] is None else f"{test['slope']:+.3f}"
            stable = ["yes" if test[k] else "no" for k in ("used_stable", "active_stable")]
            rows.append([model_label(results.key, on_dataset=True), str(replicate.seed), str(test["epochs"]), slope,
                         f"{-test['tolerance_nats']:g}", *stable,
                         "passed" if test["converged"] else f"FAILED: {test['reason']}"])
    failed, total = _unconverged(inputs.results, on_dataset=True)
    window = {r.metrics["convergence"]["window"] for m in inputs.results for r in m.replicates}
    return [
        Heading("Convergence of every model", 3),
        Paragraph(f"{total - len(failed)} of {total} trained models pass the convergence test "
                  f"(`aebench.evaluation.convergence`, read from each history): over the last "
                  f"{' / '.join(map(str, sorted(window)))} epochs, the validation objective's least-squares slope "
                  "(nats/image per epoch) is not below minus the tolerance, and neither the used set (decoder-usage "
                  "share above evaluate.usage_threshold) nor the active set (A_u above evaluate.au_threshold) "
                  "changes. A model that fails is still moving: its numbers, and every finding and claim that rests "
                  "on them, are provisional. The learning curves are among the comparison figures."),
        Table(header=["model", "seed", "epochs", "slope", "lowest slope allowed", "used set stable",
                      "active set stable", "test"], rows=rows, label_columns=2),
    ]


def table_section(inputs: ReportInputs) -> list[Block]:
    columns = table_columns(inputs.classifier_metrics)
    header, rows = comparison_table(inputs.results, columns)
    samples = sorted({v for r in inputs.results for v in r.values("test.iw_samples")})
    return [
        Heading("Comparison table", 2),
        Paragraph("One row per dataset x variant x latent size; each cell is the mean ± sample standard deviation "
                  "over the n seeds. Each column's metrics key is listed under \"How the numbers were computed\"."),
        Table(header=header, rows=rows, label_columns=4, css_class="comparison",
              caption=f"n/a: a deterministic code defines no density. IW NLL uses K = "
                      f"{' / '.join(map(str, samples))} importance samples per image."),
    ]


RUNG_LABELS = {"real": "real", "blur": "blurred", "patchwork": "patchwork", "salt_and_pepper": "salt and pepper",
               "shuffled": "shuffled", "binarized": "binarized", "binarized_patchwork": "binarized patchwork"}


def ladder_verdict(check: dict[str, Any]) -> str:
    """'passes', or 'fails: ' and each misordered pair with both values (how far off it is)."""
    if check["passes"]:
        return "passes"
    values = check["values"]
    pairs = [f"{RUNG_LABELS.get(b, b)} {values[b]:,.3f} vs {RUNG_LABELS.get(w, w)} {values[w]:,.3f}"
             for b, w in check.get("misordered", [])]
    return "fails: " + ("; ".join(pairs) or "not in the required order")


def validation_section(inputs: ReportInputs) -> list[Block]:
    rows, rungs, agreement = [], None, []
    for dataset, metrics in inputs.classifier_metrics.items():
        judges = _judges(metrics)
        for _, judge, checks in judges:
            for name, check in checks.items():
                rungs = rungs or list(check["values"])
                rows.append([dataset_label(dataset), "both judges" if name in BOTH_JUDGES else judge, name,
                             *(f"{check['values'][rung]:,.3f}" for rung in rungs), ladder_verdict(check)])
        if len(judges) == 2:
            first, second = (checks for _, _, checks in judges)
            same = [name for name in first if name in second and first[name]["passes"] == second[name]["passes"]]
            differ = [name for name in first if name in second and name not in same]
            agreement.append(f"{dataset_label(dataset)}: the {judges[1][1]} gives the same verdict for "
                             f"{', '.join(same) or 'no metric'}; another for {', '.join(differ) or 'no metric'}")
    passing = [_pair_name(section, name) for section, name in sorted(decisive_pairs(inputs.classifier_metrics))]
    return [
        Heading("Which sample metrics can be trusted: the validation ladder", 2),
        Paragraph("Each sample-quality metric scored real validation images against the test images, then the same "
                  "images blurred (Gaussian, σ = 1 pixel: soft but recognisable, the VAE's failure), as patchworks "
                  "(each image's four quadrants taken from four other images: sharp real strokes that make no digit "
                  "or garment, the EM-AE's failure), with 20% salt-and-pepper noise, with their pixels shuffled, "
                  "binarized at the middle grey (a full-contrast silhouette of the same digit or garment) and as "
                  "binarized patchworks (full-contrast fragments: the EM-AE's failure as its Fashion-MNIST samples "
                  "show it). A metric must rank real > blurred > patchwork > shuffled, real > salt and pepper > "
                  "patchwork, blurred > binarized patchwork > shuffled and binarized > binarized patchwork, for one "
                  "reason: a person calls a blurred or noisy digit, or its silhouette, a digit and a patchwork not, "
                  "so a metric that puts sharp or saturated non-digits above blurred digits rewards sharpness or "
                  "contrast, not digits (for coverage: a blurred copy reproduces its real image, a patchwork none). "
                  "Blurred against noisy, and a silhouette against its grey original, are matters of taste and are "
                  "not required. The ladder is run in two judges of different architectures, to tell a "
                  "metric's failure from its feature space's, and every sample is measured in both: only the "
                  "(metric, judge) pairs that pass on every dataset, a single judge's confidence excepted (see "
                  "\"Sample quality\"), decide which samples are better: "
                  f"{', '.join(passing) or 'none'}."),
        Table(header=["dataset", "judge", "metric", *(RUNG_LABELS.get(rung, rung) for rung in rungs or []),
                      "ladder"], rows=rows, label_columns=3),
        Bullets(agreement + [f"`{name}`: {meaning}" for name, meaning in SAMPLE_METRIC_MEANING.items()]),
    ]


def sample_groups(results: list[ModelResults]) -> dict[str, list[ModelResults]]:
    """Per dataset, its models at the largest latent size: whose samples the sample section compares."""
    groups = {}
    for dataset in dict.fromkeys(r.key.dataset for r in results):
        size = max(r.key.latent_dim for r in results if r.key.dataset == dataset)
        groups[dataset] = [r for r in results if r.key.dataset == dataset and r.key.latent_dim == size]
    return groups


def _pair_of(column: MetricColumn) -> tuple[str, str]:
    """(metrics section, quality metric) of a `judged_column`: its key is `<section>.<source>.<metric>`."""
    return column.key.split(".", 1)[0], column.quality_metric


def _pair_name(section: str, metric: str) -> str:
    return f"{metric} (both judges)" if metric in BOTH_JUDGES else f"{metric} ({JUDGE_NAMES[section]})"


def _sample_columns(classifier_metrics: dict[str, dict[str, Any]]) -> list[MetricColumn]:
    """The N(0, I) sample columns the sample section states: each decisive (metric, judge) pair, each single
    judge's opinion that passed, and each mixed measure that failed in a judge, their names saying so (shown,
    never a finding by themselves)."""
    passing, decisive = passing_pairs(classifier_metrics), decisive_pairs(classifier_metrics)
    columns = []
    for section in JUDGE_NAMES:
        for column in COLUMNS:
            metric = column.quality_metric
            if metric is None or not column.key.startswith("samples.prior."):
                continue
            if (section, metric) in decisive:
                tag = ""
            elif (section, metric) in passing:
                tag = " [one judge's opinion; not decisive]"
            elif metric in MIXED_METRICS:
                tag = " [mixed; fails the ladder]"
            else:
                continue
            judged = judged_column(section, metric)
            columns.append(replace(judged, name=judged.name + tag))
    return columns


def samples_section(inputs: ReportInputs) -> list[Block]:
    """Which model's N(0, I) samples are better, at the largest latent size: decided only by the (metric, judge)
    pairs that passed the ladder on every dataset, the mixed Fréchet distance beside them with its result, and
    the sample grids."""
    from aebench.reporting.figures import figure_named, figure_path

    samples_figure = figure_named("samples")
    passing = decisive_pairs(inputs.classifier_metrics)
    used = [_pair_name(section, name) for section in JUDGE_NAMES for name in sorted(
        name for judge, name in passing if judge == section)]
    opinions = sorted({_pair_name(section, name) for section, name in passing_pairs(inputs.classifier_metrics)
                       if name in JUDGE_OPINIONS})
    failing = [(dataset, judge, name, check) for dataset, metrics in inputs.classifier_metrics.items()
               for _, judge, checks in _judges(metrics) for name, check in checks.items() if not check["passes"]]
    blocks: list[Block] = [
        Heading("Sample quality: whose samples are better", 2),
        Paragraph("Samples decoded from N(0, I), at the largest latent size. Every sample metric is measured in the "
                  "features of two judges, the CNN (`samples.<source>.<metric>`) and the MLP on the pixels "
                  "(`samples_mlp_judge.<source>.<metric>`). The rule: a (metric, judge) pair decides which samples "
                  "are better only if it ranked the validation ladder in the required order on every dataset, and "
                  "a model's samples are stated better only where the paired 95% interval of the per-seed "
                  "differences excludes zero. Pairs used: " + (", ".join(used) or "none") + ". A single judge's "
                  "confidence is shown but decides nothing, even where it passes the ladder ("
                  + (", ".join(opinions) or "none here") + "): it compares the samples with no real image, and a "
                  "network can be confident on inputs unlike its training data (the CNN judge is on shuffled "
                  "Fashion-MNIST garments), which samples are; recognisability is decided by the two judges "
                  "agreeing (`agreed_share`: both name the same class with probability at least 0.9), which one "
                  "network's quirk cannot raise. The Fréchet distance is shown as a mixed measure with its ladder "
                  "result where it fails. The grids are the evidence the numbers must agree with."
                  + ("" if passing else " No (metric, judge) pair passed the ladder: no sample finding is stated.")),
        Bullets([f"Not used ({dataset_label(dataset)}, {judge}): `{name}` {ladder_verdict(check)}"
                 for dataset, judge, name, check in failing]),
    ]
    prior = _sample_columns(inputs.classifier_metrics)
    decisive = [column for column in prior if _pair_of(column) in passing]
    for dataset, group in sample_groups(inputs.results).items():
        sentences = [text for column in prior if (text := column_finding(group, column)) is not None]
        verdicts = [pair_verdict(a, b, decisive) for i, a in enumerate(group) for b in group[i + 1:]]
        blocks += [Heading(f"{dataset_label(dataset)}, {group[0].key.latent_dim}-D latent", 3), Bullets(sentences),
                   Paragraph("Verdicts, from the pairs used and their paired 95% intervals:"),
                   Bullets([v.sentence(name=lambda column: _pair_name(*_pair_of(column))) for v in verdicts])]
        if any(verdict.split for verdict in verdicts):
            blocks.append(Paragraph(split_explanation(verdicts, inputs.classifier_metrics.get(dataset, {}))))
        for results in group:
            if samples_figure.applies(results.key):
                path = figure_path(inputs.figures_dir, results.key, samples_figure)
                name = model_label(results.key, on_dataset=True)
                blocks.append(Figure(path=path, png=_read_png(path), alt=f"samples, {name}",
                                     caption=f"{name}: {samples_figure.caption(results, inputs.params)}"))
    return blocks


def split_explanation(verdicts: list[PairVerdict], classifier_metrics: dict[str, Any]) -> str:
    """Why the metrics of a split verdict disagree: what each measures, and what it did on this dataset's ladder
    with sharp and saturated non-digits, so the grids can be read against it."""
    records = {section: checks for section, _, checks in _judges(classifier_metrics)}
    parts = []
    columns = {c.column.key: c.column for v in verdicts if v.split for c in v.for_a + v.for_b}  # each once
    for column in columns.values():
        section, metric = _pair_of(column)
        check = records.get(section, {}).get(metric)
        ladder = "" if check is None else " (ladder: " + ", ".join(
            f"{RUNG_LABELS[rung]} {check['values'][rung]:,.3f}" for rung in CONTRAST_RUNGS
            if rung in check["values"]) + ")"
        parts.append(f"{column.name} measures {METRIC_PROPERTY.get(metric, metric)}{ladder}")
    return ("Where the verdict is split, the metrics ask different questions, and each passed the ladder, so "
            "neither rewards sharpness or contrast alone (it ranks blurred images above full-contrast "
            "fragments): " + "; ".join(parts) + ". Fidelity asks whether each sample is plainly a digit or garment, "
            "coverage how much of the test set the samples reproduce. The grids below show both: read them for "
            "how plainly each sample is one class, and for how varied and how like the test images they are.")


def comparison_figures_section(inputs: ReportInputs) -> list[Block]:
    blocks: list[Block] = [Heading("Comparison figures", 2)]
    for dataset, figures in inputs.compare_figures.items():
        blocks.append(Heading(dataset_label(dataset), 3))
        of_dataset = [r for r in inputs.results if r.key.dataset == dataset]
        for spec, final, current in figures:
            caption = f"{spec.title}. {spec.caption(of_dataset, inputs.compare_context)}"
            blocks.append(Figure(path=final, png=_read_png(current), caption=caption,
                                 alt=f"{spec.title}, {dataset_label(dataset)}"))
    return blocks


def model_figures_section(inputs: ReportInputs) -> list[Block]:
    in_samples = {id(r) for group in sample_groups(inputs.results).values() for r in group}
    blocks: list[Block] = [Heading("Figures per model", 2)]
    dataset = None
    for results in inputs.results:
        if results.key.dataset != dataset:
            dataset = results.key.dataset
            blocks.append(Heading(dataset_label(dataset), 3))
        linked = {"samples"} if id(results) in in_samples else set()  # embedded under "Sample quality"
        blocks += model_blocks(results, inputs.params, inputs.figures_dir,
                               alt=model_label(results.key, on_dataset=True), linked=linked)
    return blocks


def model_blocks(results: ModelResults, params: Params, figures_root: Path, *, alt: str,
                 linked: set[str] = frozenset()) -> list[Block]:
    """A model's heading and its figures with title and caption; the figures named in `linked` only as links."""
    from aebench.reporting.figures import figure_path, figures_for

    blocks: list[Block] = [Heading(model_label(results.key, on_dataset=True), 4)]
    for figure in figures_for(results.key):
        path = figure_path(figures_root, results.key, figure)
        if figure.name in linked:
            blocks.append(Paragraph(f"{figure.title}: {figure_link('shown under Sample quality', path)}."))
            continue
        caption = f"{figure.title}. {figure.caption(results, params)}"
        blocks.append(Figure(path=path, png=_read_png(path), caption=caption, alt=f"{figure.title}, {alt}"))
    return blocks


# --- a replicate profile ---------------------------------------------------------------------


def stated_setup(params_file: Path) -> str:
    """The profile file's header: what the article states, and what was assumed where it is silent."""
    header = itertools.takewhile(lambda line: line.startswith("#"), params_file.read_text().splitlines())
    return " ".join(line.lstrip("# ").rstrip() for line in header)


def convergence_line(setup: Setup) -> str:
    """Whether every model of a profile passed its convergence test, and which did not."""
    failed, total = _unconverged(setup.results, on_dataset=False)
    if not failed:
        return f"Convergence: all {total} models of this profile pass the convergence test."
    return (f"Convergence: PROVISIONAL, {len(failed)} of {total} models fail the convergence test "
            f"({', '.join(failed)}); this profile's numbers and verdicts may still move with training.")


def profile_section(setup: Setup, params_file: Path, columns: list[MetricColumn]) -> list[Block]:
    """A replicate profile: its stated setup, convergence, params, table, findings and every model's figures."""
    params = load_params(params_file)
    header, rows = comparison_table(setup.results, columns)
    blocks: list[Block] = [
        Heading(f"Profile {setup.name}", 2),
        Paragraph(stated_setup(params_file)),
        Paragraph(convergence_line(setup)),
        Code(f"{params_file}: datasets {list(params.datasets)}, variants {list(params.variants)}, latent sizes "
             f"{list(params.latent_dims)}, seeds {list(params.seeds)}, {params.train.epochs} epochs, batch "
             f"{params.train.batch_size}, lr {params.train.lr:g}, network {params.network.arch} "
             f"{list(params.network.hidden)}, likelihood {params.likelihood.name}, binarize {params.data.binarize}"),
        Table(header=header, rows=rows, label_columns=4, css_class="comparison"),
        *findings_blocks(setup.results, columns),
    ]
    for results in setup.results:
        blocks += model_blocks(results, params, setup.figures, alt=setup.name)
    return blocks


def methods_section(inputs: ReportInputs) -> list[Block]:
    columns = table_columns(inputs.classifier_metrics)
    rows = [[column.header, f"`{column.key}`", METRIC_DOCS.get(column.key, "")] for column in columns]
    listed = {column.key for column in columns}
    # A (sample-quality metric, judge) pair that failed its validation is not described either (of any source).
    passing = passing_pairs(inputs.classifier_metrics)
    quality = {c.quality_metric for c in COLUMNS if c.quality_metric is not None}

    def dropped(key: str) -> bool:
        section, metric = key.split(".", 1)[0], key.rsplit(".", 1)[-1]
        return section in JUDGE_NAMES and metric in quality and (section, metric) not in passing

    rows += [["", f"`{key}`", text] for key, text in METRIC_DOCS.items() if key not in listed and not dropped(key)]
    return [
        Heading("How the numbers were computed", 2),
        Paragraph("Descriptions from `aebench.evaluation.metrics.METRIC_DOCS`, where every key of the metrics files "
                  "is documented (unit in brackets). All metrics are on the test split unless the key says otherwise."),
        Table(header=["column", "metrics key", "how it is computed"], rows=rows, label_columns=3),
    ]


def data_blocks(inputs: ReportInputs) -> list[Block]:
    blocks: list[Block] = [Heading("Data", 3)]
    for dataset, info in inputs.data_infos.items():
        splits = ", ".join(f"{split} {size:,}" for split, size in info["splits"].items())
        facts = [f"Splits: {splits}", f"Validation images drawn from the official train split with split seed "
                                      f"{info.get('split_seed')}"]
        if info.get("subset") is not None:
            facts.append(f"Subset: only the first {info['subset']:,} images of each split were kept")
        classifier = inputs.classifier_metrics.get(dataset)
        if classifier is not None:
            facts.append(f"Sample-quality classifier test accuracy: {100 * float(classifier['test_accuracy']):.2f}%; "
                         f"its mean top-class probability on real test images: "
                         f"{float(classifier['real_mean_confidence']):.3f}")
        files = [
            [name, f"{entry.get('bytes', 0):,}", f"`{entry.get('md5', '')}`", f"`{entry.get('sha256', '')}`"]
            for name, entry in info["files"].items()
        ]
        blocks += [
            Heading(dataset_label(dataset), 4),
            Bullets(facts),
            Table(header=["file", "bytes", "md5", "sha256"], rows=files, label_columns=4),
        ]
    return blocks


def setup_section(inputs: ReportInputs) -> list[Block]:
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = None
    buffer = io.StringIO()
    yaml.dump(inputs.params.to_dict(), buffer)
    packages = [[name, version] for name, version in inputs.packages.items()]
    return [
        Heading("Setup", 2),
        Heading("Parameters", 3),
        Paragraph("The resolved params file the report was built with (DVC reruns every stage whose parameters "
                  "changed, so the stage outputs above were made with these values)."),
        Code(buffer.getvalue()),
        *data_blocks(inputs),
        Heading("Software", 3),
        Table(header=["package", "version"], rows=packages, label_columns=2),
        Heading("Wall times and machines", 3),
        Paragraph(f"Wall times, the machines, the MLflow run ids and the git commit differ between two runs of the "
                  f"same computation, so they are not in this report (which a rerun must reproduce byte for byte): "
                  f"they are in `{inputs.timings_page.name}` beside it, written from the run-info records."),
    ]


SECTIONS = (
    introduction,
    ledger_section,
    findings_section,
    table_section,
    samples_section,
    validation_section,
    comparison_figures_section,
    model_figures_section,
    methods_section,
    setup_section,
)


def build_report(inputs: ReportInputs) -> list[Block]:
    blocks: list[Block] = []
    for section in SECTIONS:
        blocks += section(inputs)
    return blocks
