"""Parsers of command-line values that are more than one scalar (seed lists, ranges)."""
from __future__ import annotations

from omegaconf import ListConfig

from facegen.errors import GenerateConfigError


def parse_seeds(seeds: str | int | list | ListConfig) -> list[int]:
    """``"0-63"`` -> 0..63, ``"1,5,9"`` -> [1, 5, 9], mixed ``"0-3,10"``, a list or a single int.

    Raises:
        GenerateConfigError: a part is not an integer or a ``lo-hi`` range with ``lo <= hi``.
    """
    if isinstance(seeds, int):
        return [seeds]
    if isinstance(seeds, (list, tuple, ListConfig)):
        return [s for part in seeds for s in parse_seeds(part)]
    result: list[int] = []
    for part in str(seeds).replace(" ", "").split(","):
        lo, sep, hi = part.partition("-")
        try:
            first, last = int(lo), int(hi) if sep else int(lo)
        except ValueError:
            raise GenerateConfigError(
                f"seeds: cannot parse {part!r} in {seeds!r}; use '0-63', '1,5,9' or [1,5,9]"
            ) from None
        if last < first:
            raise GenerateConfigError(f"seeds: range {part!r} ends before it starts")
        result += range(first, last + 1)
    return result
