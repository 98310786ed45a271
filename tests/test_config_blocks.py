"""Config blocks: keys, types and ranges are checked and the key at fault is named."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytest

from facegen.config.blocks import block, plain
from facegen.errors import ConfigError


@dataclass(frozen=True)
class Loss:
    r1_gamma: float = 10.0
    r1_interval: int = 16
    space: Literal["normalised", "mm"] = "normalised"
    weights: tuple[float, ...] = (1.0, 2.0)
    cutoff: int | None = None

    def check(self, where: str) -> None:
        if self.r1_interval < 1:
            raise ConfigError(f"{where}.r1_interval: must be >= 1, got {self.r1_interval}")


def test_values_are_converted_and_defaults_kept():
    loss = block(Loss, {"r1_gamma": 1, "weights": [3, 4], "cutoff": None}, "model.loss")
    assert loss == Loss(r1_gamma=1.0, weights=(3.0, 4.0)) and isinstance(loss.r1_gamma, float)
    assert plain(loss) == {"r1_gamma": 1.0, "r1_interval": 16, "space": "normalised", "weights": [3.0, 4.0],
                           "cutoff": None}
    assert block(Loss, None, "model.loss") == Loss()


@pytest.mark.parametrize("values, message", [
    ({"r1_gama": 1.0}, r"model.loss.r1_gama: unknown key; did you mean 'r1_gamma'\?"),
    ({"r1_interval": "abc"}, r"model.loss.r1_interval: expected int, got 'abc'"),
    ({"r1_interval": 2.5}, r"model.loss.r1_interval: expected int, got 2.5"),
    ({"space": "milimetres"}, r"model.loss.space: expected one of 'normalised', 'mm', got 'milimetres'"),
    ({"weights": [1, "x"]}, r"model.loss.weights\[1\]: expected float, got 'x'"),
    ({"r1_interval": 0}, r"model.loss.r1_interval: must be >= 1, got 0"),
    ({"cutoff": "two"}, r"model.loss.cutoff: expected int or null, got 'two'"),
])
def test_bad_values_name_the_key(values, message):
    with pytest.raises(ConfigError, match=message):
        block(Loss, values, "model.loss")
