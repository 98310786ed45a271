"""Multi-stage training recipes run by ``facegen.train`` when the config has a ``recipe:`` key
(e.g. ``experiment=stylegan2_macaque``), and evaluated by ``facegen.evaluate recipe_dir=...``."""
from __future__ import annotations

from pathlib import Path

from facegen.recipes.macaque_table import evaluate_recipe as evaluate_macaque


def evaluate_recipe(recipe_dir: str | Path, **kwargs) -> list[dict]:
    """Ablation table of a recipe folder (today only the macaque recipe:
    :func:`facegen.recipes.macaque_table.evaluate_recipe`)."""
    return evaluate_macaque(recipe_dir, **kwargs)


__all__ = ["evaluate_recipe"]
