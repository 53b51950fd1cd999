"""Springenberg et al. 2015 ("Striving for Simplicity: The All Convolutional Net"): names and
the paper's numbers, as data. The models themselves are ordinary backbone × strategy × head
(model=springenberg_a|b|c, downsample=max|strided|convpool|conv, head=allconv).
"""

from __future__ import annotations

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
