"""Our five furniture categories and the Objaverse-LVIS names that map to each (the one place)."""

from __future__ import annotations

CATEGORIES: tuple[str, ...] = ("table", "chair", "bookshelf", "bed", "sofa")

LVIS_NAMES: dict[str, tuple[str, ...]] = {
    "table": ("table", "dining_table", "kitchen_table", "coffee_table", "desk", "pool_table", "card_table"),
    "chair": ("chair", "armchair", "folding_chair", "rocking_chair", "highchair", "deck_chair", "barber_chair",
              "wheelchair", "stool", "step_stool"),
    "bookshelf": ("bookcase",),
    "bed": ("bed", "bunk_bed", "crib"),
    "sofa": ("sofa", "loveseat", "sofa_bed", "futon", "ottoman"),
}
"""Objaverse-LVIS category names per category of ours."""


def check_categories(categories: list[str] | tuple[str, ...]) -> list[str]:
    """Return ``categories`` if all are known, else raise naming the unknown ones."""
    unknown = [c for c in categories if c not in CATEGORIES]
    if unknown:
        raise ValueError(f"unknown category {', '.join(map(repr, unknown))}; known: {', '.join(CATEGORIES)}")
    return list(categories)

