"""Springenberg et al. 2015, "Striving for Simplicity: The All Convolutional Net": the
variant names, the paper's Table 3, and the paper-vs-ours table, in one module.

The models themselves are ordinary backbone × strategy × head (model=springenberg_a|b|c,
downsample=max|strided|convpool|conv, head=allconv). The table: for each model (backbone ×
downsample) the learning rate with the best mean final `val_accuracy` over seeds is chosen;
it reports that lr's test error (mean ± std over seeds, n), the paper's Table 3 error and
the difference, and whether the order of the four variants within each backbone matches the
paper's. pandas only: it reads the frames dsbench.analysis.runs makes.
"""

from __future__ import annotations

import pandas as pd

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


def selected(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, model, downsample): the lr with the best validation accuracy."""
    runs = runs.assign(lr=runs["params.trainer.lr"].astype(float))
    keys = ["dataset", "model", "downsample"]
    by_lr = runs.groupby([*keys, "lr"]).agg(
        val_accuracy=("metrics.val_accuracy", "mean"),
        test_error_mean=("metrics.test_error", "mean"),
        test_error_std=("metrics.test_error", "std"),
        seeds=("metrics.test_error", "size"),
        paper_error=("paper_error", "first"),
    )
    best = by_lr.reset_index().sort_values("val_accuracy", ascending=False)
    table = best.groupby(keys, as_index=False).first()
    table["variant"] = [
        variant(m, d) for m, d in zip(table["model"], table["downsample"], strict=True)
    ]
    for col in ("test_error_mean", "test_error_std"):
        table[col] = 100 * table[col]
    table["delta"] = table["test_error_mean"] - table["paper_error"]
    return table


def order_matches(table: pd.DataFrame) -> dict[str, bool | None]:
    """Per backbone: do our errors rank the variants as the paper's do? None: no paper numbers."""
    out: dict[str, bool | None] = {}
    for model, group in table.groupby("model"):
        g = group.dropna(subset=["paper_error"])
        if len(g) < 2:
            out[model] = None
            continue
        ours = list(g.sort_values("test_error_mean")["downsample"])
        paper = list(g.sort_values("paper_error")["downsample"])
        out[model] = ours == paper
    return out


def to_markdown(table: pd.DataFrame) -> str:
    def err(row: pd.Series) -> str:
        std = "" if row.seeds < 2 else f" ± {row.test_error_std:.2f}"
        return f"{row.test_error_mean:.2f}{std} (n={row.seeds})"

    lines = [
        "| dataset | variant | lr (best val) | test error % (ours) | paper % | delta |",
        "|---|---|---|---|---|---|",
    ]
    for _, row in table.sort_values(["dataset", "model", "downsample"]).iterrows():
        paper = "" if pd.isna(row.paper_error) else f"{row.paper_error:.2f}"
        delta = "" if pd.isna(row.delta) else f"{row.delta:+.2f}"
        lines.append(
            f"| {row.dataset} | {row.variant} | {row.lr:g} | {err(row)} | {paper} | {delta} |"
        )
    orders = order_matches(table)
    lines.append("")
    for model, ok in orders.items():
        verdict = {True: "matches", False: "differs from", None: "cannot be compared with"}[ok]
        lines.append(f"- {model}: the order of the variants {verdict} the paper's")
    return "\n".join(lines) + "\n"
