"""Springenberg et al. 2015, "Striving for Simplicity: The All Convolutional Net": the
variant names, the paper's Table 3, and the paper-vs-ours table, in one module.

The models themselves are ordinary backbone × strategy × head (model=springenberg_a|b|c,
downsample=max|strided|convpool|conv, head=allconv). The table (`report`): for each model
(backbone × downsample) the learning rate with the best mean final `val_accuracy` over the
grid seeds is chosen; it reports that lr's test error over every seed run with it (mean ±
std, n), the paper's Table 3 error and the difference; per backbone, the order of the four
variants and whether the paper's claims hold; the lr grid; every run that diverged, and
every run that ended at chance. pandas only (and the dataset registry for the class
count): it reads the frames dsbench.analysis.load makes.
"""

from __future__ import annotations

import math
import re
import shlex
import sys
from typing import Any

import pandas as pd

from dsbench.analysis.tables import improving_line, provenance_line
from dsbench.config import TrainConfig, record_only
from dsbench.contract import Metric, Tag, metric_column, tag_column
from dsbench.data.registry import DATASETS
from dsbench.errors import DIVERGED, DsbenchError
from dsbench.hooks import Study

# The study's own tags, on a run of one of the paper's models.
VARIANT_TAG = "variant"  # the paper's name of the model (`variant`), e.g. All-CNN-C
PAPER_ERROR_TAG = "paper_error"  # the paper's test error % for it (`paper_error`), if any

# downsample strategy → the paper's name of the variant of base model X.
VARIANTS = {
    "max": "Model {X}",
    "strided": "Strided-CNN-{X}",
    "convpool": "ConvPool-CNN-{X}",
    "conv": "All-CNN-{X}",
}
BACKBONE_LETTER = {"springenberg_a": "A", "springenberg_b": "B", "springenberg_c": "C"}

# Table 3: CIFAR-10 test error (%), no augmentation.
TABLE3_CIFAR10 = {
    ("A", "max"): 12.47,
    ("A", "strided"): 13.46,
    ("A", "convpool"): 10.21,
    ("A", "conv"): 10.30,
    ("B", "max"): 10.20,
    ("B", "strided"): 10.98,
    ("B", "convpool"): 9.33,
    ("B", "conv"): 9.10,
    ("C", "max"): 9.74,
    ("C", "strided"): 10.19,
    ("C", "convpool"): 9.31,
    ("C", "conv"): 9.08,
}
ALL_CNN_C_CIFAR10_AUGMENTED = 7.25
ALL_CNN_C_CIFAR100 = 33.71


def variant(model: str, downsample: str) -> str | None:
    """The paper's name (e.g. All-CNN-C); `C+avg` for strategies the paper did not use."""
    letter = BACKBONE_LETTER.get(model)
    if letter is None:
        return None
    return VARIANTS.get(downsample, f"{{X}}+{downsample}").format(X=letter)


def paper_error(dataset: str, model: str, downsample: str, augmented: bool) -> float | None:
    """The paper's test error (%) for this setting, where the paper reports one."""
    letter = BACKBONE_LETTER.get(model)
    if letter is None:
        return None
    if dataset == "cifar10" and not augmented:
        return TABLE3_CIFAR10.get((letter, downsample))
    if dataset == "cifar10" and (letter, downsample) == ("C", "conv"):
        return ALL_CNN_C_CIFAR10_AUGMENTED
    if dataset == "cifar100" and not augmented and (letter, downsample) == ("C", "conv"):
        return ALL_CNN_C_CIFAR100
    return None


KEYS = [Tag.DATASET, Tag.MODEL, Tag.DOWNSAMPLE]  # one row of the table: one of the 12 models
PER_RUN = ("trainer.lr", "trainer.seed")  # what may differ between the runs of one model


def diverged(runs: pd.DataFrame) -> pd.Series:
    """Which runs diverged (errors.Diverged), rather than failed for a reason from outside."""
    reason = runs.get(tag_column(Tag.FAILURE_REASON), pd.Series("", index=runs.index))
    reason = reason.fillna("")
    return (runs["status"] == "FAILED") & reason.astype(str).str.startswith(DIVERGED)


CHANCE_LOSS_TOLERANCE = 0.01  # nats from ln K: a loss this close is a constant output


def collapsed(runs: pd.DataFrame) -> pd.Series:
    """Which FINISHED runs ended at chance: a final training loss within
    CHANCE_LOSS_TOLERANCE of ln K (K classes), the cross-entropy of an output that ignores
    the image, and a validation accuracy under 2/K. Without batch norm a high lr does this
    too: the loss jumps, every ReLU dies, and the loss then sits at ln K, finite, so the run
    is not Diverged (a NaN) and finishes. It is a result, but it is the lr's failure, so the
    report names it. False where the loss, the accuracy or the dataset is unknown."""
    loss_column, val_column = metric_column(Metric.LOSS), metric_column(Metric.VAL_ACCURACY)
    if loss_column not in runs or val_column not in runs:
        return pd.Series(False, index=runs.index)
    classes = runs[Tag.DATASET].map(
        lambda name: getattr(DATASETS.get(name), "num_classes", math.nan), na_action="ignore"
    )
    classes = pd.to_numeric(classes, errors="coerce")
    loss = pd.to_numeric(runs[loss_column], errors="coerce")
    val = pd.to_numeric(runs[val_column], errors="coerce")
    at_chance = ((loss - classes.map(math.log)).abs() < CHANCE_LOSS_TOLERANCE) & (val < 2 / classes)
    return (runs["status"] == "FINISHED") & at_chance


def study_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """The study's results among an experiment's runs (dsbench.analysis.load's frame): the
    paper's models, FINISHED or diverged, the newest run of each config, with `lr`, `seed`,
    `diverged`, `collapsed` and `paper_error` as numbers. Empty if there are none.

    Raises DsbenchError where no lr can be chosen (no validation accuracy) or where the
    runs of one model were trained differently in anything but lr and seed: one table is one
    protocol (a second stage trained with other overrides than the grid, say).
    """
    variant_column, config = tag_column(VARIANT_TAG), tag_column(Tag.CONFIG_HASH)
    if variant_column not in runs:
        return runs.iloc[0:0]
    study = runs[runs[variant_column].notna()]
    study = study.assign(diverged=diverged(study))
    study = study[(study["status"] == "FINISHED") | study["diverged"]]
    if config in study:  # a config trained twice (tracking.resume=false)
        if "start_time" in study:
            study = study.sort_values("start_time", ascending=False, kind="stable")
        study = study.drop_duplicates(config)
    if study.empty:
        return study
    if study.get(metric_column(Metric.VAL_ACCURACY), pd.Series(dtype=float)).isna().all():
        raise DsbenchError(
            "the runs logged no validation accuracy (dataset.val_fraction=0?): the study "
            "chooses each model's lr on it; train with dataset.val_fraction > 0"
        )
    check_one_protocol(study)
    return study.assign(
        collapsed=collapsed(study),
        lr=study["params.trainer.lr"].astype(float),
        seed=pd.to_numeric(study[Tag.SEED]).astype(int),
        paper_error=pd.to_numeric(study.get(tag_column(PAPER_ERROR_TAG)), errors="coerce"),
    )


def check_one_protocol(study: pd.DataFrame) -> None:
    def per_run(key: str) -> bool:
        return key in PER_RUN or record_only(key)

    params = [c for c in study if c.startswith("params.") and not per_run(c[7:])]
    for key, group in study.groupby(KEYS):
        for param in params:
            values = group[param].dropna().unique()
            if len(values) > 1:
                raise DsbenchError(
                    f"the runs of {variant(key[1], key[2])} ({key[0]}) differ in "
                    f"{param[7:]} ({', '.join(sorted(map(str, values)))}): a table compares "
                    "one protocol; train every stage with the grid's overrides, or keep other "
                    "protocols apart with tracking.experiment="
                )


def lr_grid(study: pd.DataFrame) -> pd.DataFrame:
    """Per model and lr, the grid's validation accuracy: the mean over the *grid seeds*, the
    seeds every lr of that model was run with. Seeds added later at the chosen lr (the
    second stage) do not move the choice. An lr that diverged on a grid seed cannot be
    chosen (its val_accuracy is NaN, `diverged` counts the runs); `collapsed` counts the grid
    runs that ended at chance. `study`: `study_frame`'s."""
    seeds = study.groupby([*KEYS, "lr"])["seed"].agg(frozenset)
    grid_seeds = seeds.groupby(level=KEYS).agg(lambda s: frozenset.intersection(*s))
    in_grid = [
        seed in grid_seeds[tuple(key)]
        for key, seed in zip(study[KEYS].itertuples(index=False), study["seed"], strict=True)
    ]
    grid = (
        study[in_grid]
        .groupby([*KEYS, "lr"])
        .agg(
            **{Metric.VAL_ACCURACY: (metric_column(Metric.VAL_ACCURACY), "mean")},
            diverged=("diverged", "sum"),
            collapsed=("collapsed", "sum"),
        )
        .reset_index()
    )
    grid.loc[grid["diverged"] > 0, Metric.VAL_ACCURACY] = float("nan")
    return grid


def selected(study: pd.DataFrame) -> pd.DataFrame:
    """One row per model: the lr with the best grid validation accuracy (`lr_grid`), and
    that lr's test error over every seed that finished with it (mean, std, n); `diverged_at_lr`
    and `collapsed_at_lr` count the seeds that diverged or ended at chance there. Where no lr
    can be chosen, lr is NaN and `note` says why. `study`: `study_frame`'s rows."""
    grid = lr_grid(study)
    grids = dict(tuple(grid.groupby(KEYS)))
    rows = []
    for key, of_model in study.groupby(KEYS):
        options = grids.get(key, grid.iloc[0:0])  # none: no seed ran at every lr
        eligible = options.dropna(subset=[Metric.VAL_ACCURACY])
        best = eligible.loc[eligible[Metric.VAL_ACCURACY].idxmax()] if len(eligible) else None
        if best is not None:
            note = ""
        elif options.empty:
            note = "no seed ran at every lr"
        elif (options["diverged"] > 0).all():
            note = "every lr diverged"
        else:
            note = "no validation accuracy"
        lr = float("nan") if best is None else float(best["lr"])
        mine = of_model[of_model["lr"] == lr]
        done = mine.loc[~mine["diverged"], metric_column(Metric.TEST_ERROR)].dropna()
        rows.append(
            {
                **dict(zip(KEYS, key, strict=True)),
                "variant": variant(key[1], key[2]),
                "lr": lr,
                "note": note,
                Metric.VAL_ACCURACY: float("nan") if best is None else best[Metric.VAL_ACCURACY],
                "test_error_mean": 100 * done.mean(),
                "test_error_std": 100 * done.std(),
                "seeds": int(done.count()),
                "diverged_at_lr": int(mine["diverged"].sum()),
                "collapsed_at_lr": int(mine["collapsed"].sum()),
                "paper_error": of_model["paper_error"].max(),
            }
        )
    table = pd.DataFrame(rows)
    table["delta"] = table["test_error_mean"] - table["paper_error"]
    return table


def order(errors: dict[str, float]) -> list[str]:
    """The downsampling variants from the lowest test error to the highest (NaN left out)."""
    return sorted((d for d, e in errors.items() if pd.notna(e)), key=lambda d: errors[d])


def verdict(dataset: str, model: str, errors: dict[str, float], std: float) -> str:
    """One line: our order of the four variants of a backbone, the paper's (CIFAR-10 Table
    3), and whether the paper's claims hold here, each with its margin in pp (+: holds by,
    −: fails by): Strided-CNN worst; ConvPool-CNN and All-CNN both better than the base
    model. `std`: the largest seed std among the four (NaN: every one has n=1)."""
    letter = BACKBONE_LETTER[model]
    name = {d: variant(model, d) for d in VARIANTS}
    ours = order(errors)
    paper = order({d: TABLE3_CIFAR10[(letter, d)] for d in VARIANTS})
    line = f"- **{letter}** ({dataset}): ours " + " < ".join(
        f"{name[d]} {errors[d]:.2f}" for d in ours
    )
    line += "; paper (CIFAR-10) " + " < ".join(name[d] for d in paper) + "."
    if len(ours) < len(VARIANTS):
        return line + " Not every variant has a result: no verdict."
    e = errors
    margins = {
        "Strided-CNN worst": e["strided"] - max(e["max"], e["convpool"], e["conv"]),
        "ConvPool-CNN and All-CNN both better than the base model": e["max"]
        - max(e["convpool"], e["conv"]),
    }
    claims = [f"{c}: {'yes' if m > 0 else 'no'} ({m:+.2f} pp)" for c, m in margins.items()]
    claims.append(f"the paper's order: {'yes' if ours == paper else 'no'}")
    noise = "n=1: no seed spread to judge the margins by"
    if pd.notna(std):
        noise = f"seed std up to {std:.2f} pp"
    return f"{line} {'; '.join(claims)} ({noise})."


def report(study: pd.DataFrame) -> str:
    """The whole study in Markdown, from `study_frame`'s rows, then whether its runs were
    still improving and which code they came from."""
    text = to_markdown(
        selected(study), lr_grid(study), study[study["diverged"]], study[study["collapsed"]]
    )
    return f"{text}\n{improving_line(study)} {provenance_line(study)}\n"


def to_markdown(
    table: pd.DataFrame,
    grid: pd.DataFrame | None = None,
    divergences: pd.DataFrame | None = None,
    collapses: pd.DataFrame | None = None,
) -> str:
    """The paper-vs-ours table, a verdict per backbone, and (given) the lr grid, the runs
    that diverged and the runs that ended at chance."""

    def err(row: pd.Series) -> str:
        extra = f", {row.diverged_at_lr} diverged" if row.diverged_at_lr else ""
        if row["collapsed_at_lr"]:
            extra += f", {row['collapsed_at_lr']} at chance"
        if row.seeds == 0:
            return f"– (n=0{extra})"
        std = "" if row.seeds < 2 else f" ± {row.test_error_std:.2f}"
        return f"{row.test_error_mean:.2f}{std} (n={row.seeds}{extra})"

    lines = [
        "| dataset | variant | lr (best val) | val acc % (grid seeds) | test error % (ours) "
        "| paper % | delta |",
        "|---|---|---|---|---|---|---|",
    ]
    for _, row in table.sort_values(KEYS).iterrows():
        lr = row.note if pd.isna(row.lr) else f"{row.lr:g}"
        val = "" if pd.isna(row.val_accuracy) else f"{100 * row.val_accuracy:.2f}"
        paper = "" if pd.isna(row.paper_error) else f"{row.paper_error:.2f}"
        delta = "" if pd.isna(row.delta) else f"{row.delta:+.2f}"
        lines.append(
            f"| {row.dataset} | {row.variant} | {lr} | {val} | {err(row)} | {paper} | {delta} |"
        )
    lines += [
        "",
        "Within each backbone, from the lowest test error, and the paper's claims (in pp, + "
        "where a claim holds by that much, − where it fails by that much):",
        "",
    ]
    for (dataset, model), group in table.groupby([Tag.DATASET, Tag.MODEL]):
        if model not in BACKBONE_LETTER:
            continue
        g = group.set_index(Tag.DOWNSAMPLE)
        errors = {d: g["test_error_mean"].get(d, float("nan")) for d in VARIANTS}
        lines.append(verdict(dataset, model, errors, g["test_error_std"].max()))
    if grid is not None and len(grid):
        lines += ["", grid_markdown(grid)]
    if divergences is not None:
        lines += ["", f"Runs that diverged (loss NaN or infinite): {len(divergences)}."]
        for _, run in divergences.sort_values([*KEYS, "lr", "seed"]).iterrows():
            reason = str(run.get(tag_column(Tag.FAILURE_REASON), "")).removeprefix(DIVERGED)
            lines.append(
                f"- {variant(run.model, run.downsample)}, lr {run.lr:g}, seed {run.seed}: {reason}"
            )
    if collapses is not None:
        lines += [
            "",
            "Runs that ended at chance (finished, but the final training loss is within "
            f"{CHANCE_LOSS_TOLERANCE} of ln K, the loss of an output that ignores the image): "
            f"{len(collapses)}.",
        ]
        for _, run in collapses.sort_values([*KEYS, "lr", "seed"]).iterrows():
            lines.append(
                f"- {variant(run.model, run.downsample)}, lr {run.lr:g}, seed {run.seed}: "
                f"training loss {float(run[metric_column(Metric.LOSS)]):.4f}, "
                f"val accuracy {100 * float(run[metric_column(Metric.VAL_ACCURACY)]):.2f} %"
            )
    return "\n".join(lines) + "\n"


def grid_markdown(grid: pd.DataFrame) -> str:
    """Validation accuracy (%) of every model at every lr of the grid; "diverged" where a
    grid seed's loss became NaN, "(n at chance)" after it where n grid seeds ended at chance,
    – where a run logged none."""

    def cell(value: float, n_diverged: int, n_collapsed: int) -> str:
        if n_diverged:
            return "diverged"
        text = "–" if pd.isna(value) else f"{100 * value:.2f}"
        return f"{text} ({n_collapsed} at chance)" if n_collapsed else text

    lrs = sorted(grid["lr"].unique(), reverse=True)
    lines = [
        "Validation accuracy % per learning rate (mean over the grid seeds; the lr above is "
        "the best):",
        "",
        "| dataset | variant | " + " | ".join(f"lr {lr:g}" for lr in lrs) + " |",
        "|---|---|" + "---|" * len(lrs),
    ]
    for key, group in grid.groupby(KEYS):
        by_lr = group.set_index("lr")
        cells = [
            cell(
                by_lr.at[lr, Metric.VAL_ACCURACY],
                by_lr.at[lr, "diverged"],
                by_lr.at[lr, "collapsed"],
            )
            if lr in by_lr.index
            else ""
            for lr in lrs
        ]
        lines.append(f"| {key[0]} | {variant(key[1], key[2])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


SEEDS = re.compile(r"\d+(,\d+)*")


def check_second_stage(seeds: str, overrides: list[str]) -> None:
    """Bad input for `seed_commands`, in one line."""
    if not SEEDS.fullmatch(seeds):
        raise DsbenchError(f"seeds= takes seeds separated by commas, like 1,2; got {seeds!r}")
    if not any(o.startswith("experiments=") for o in overrides):
        raise DsbenchError(
            "seeds= needs the grid's own overrides, e.g. "
            "experiments=springenberg2015_fashion dataset.source=archive: the new seeds must "
            "train what the grid trained"
        )


def seed_commands(table: pd.DataFrame, seeds: str, overrides: list[str]) -> list[str]:
    """The second stage: one `python -m dsbench train -m` line per model (this Python,
    quoted for sh) that trains `seeds` at its chosen lr with the grid's `overrides` (so into
    the same experiment and store)."""
    lines = []
    for row in table.sort_values(KEYS).itertuples():
        if pd.isna(row.lr):
            lines.append(f"# {row.variant}: {row.note}; no lr to train more seeds at")
            continue
        job = [f"dataset={row.dataset}", f"model={row.model}", f"downsample={row.downsample}"]
        job.append(f"trainer.lr={row.lr:g}")
        words = [sys.executable, "-m", "dsbench", "train", "-m", *overrides, *job]
        lines.append(shlex.join([*words, f"trainer.seed={seeds}"]))
    return lines


def run_tags(cfg: TrainConfig) -> dict[str, Any]:
    """`variant` (e.g. All-CNN-C) and `paper_error` (Table 3) for a run of the paper's models."""
    name = variant(cfg.model.name, cfg.downsample.name)
    if name is None:
        return {}
    tags: dict[str, Any] = {VARIANT_TAG: name}
    error = paper_error(
        cfg.dataset.name, cfg.model.name, cfg.downsample.name, cfg.trainer.augmented
    )
    if error is not None:
        tags[PAPER_ERROR_TAG] = error
    return tags


def table(runs: pd.DataFrame) -> str | None:
    """Ours vs Table 3 (lr chosen on validation) for the study's runs among `runs`, else None;
    runs that make no table say why, in the table's place."""
    try:
        study = study_frame(runs)
    except DsbenchError as e:
        return f"No table: {e}.\n"
    return None if study.empty else report(study)


STUDY = Study(
    name="springenberg2015",
    title="Springenberg et al. 2015",
    report_file="paper_vs_ours.md",
    run_tags=run_tags,
    report=table,
    owns_runs=lambda runs: tag_column(VARIANT_TAG) in runs,
)
