"""Where generated synthetic datasets live in the cache, and building one once even when runs start together."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from facegen.utils import file_lock


def cache_folder(cache_dir: str | Path, kind: str, model_seed: int, generation: dict) -> Path:
    """``cache_dir/<kind>/<sha1 of the generation settings>``: one folder per distinct dataset."""
    settings = {k: asdict(v) if hasattr(v, "__dataclass_fields__") else v for k, v in generation.items()}
    text = json.dumps({"model_seed": model_seed, **settings}, sort_keys=True, default=str)
    return Path(cache_dir).expanduser() / kind / hashlib.sha1(text.encode()).hexdigest()[:16]


def build_once(folder: Path, marker: str, build: Callable[[], object]) -> bool:
    """Run ``build()`` unless ``folder/marker`` (the file a complete dataset is written last) exists.

    Two processes that find the dataset missing at once (two runs started together on a fresh cache) take turns
    on ``<folder>.lock``: the second waits, then finds the first one's dataset. Returns whether it built.
    """
    if (folder / marker).exists():
        return False
    with file_lock(folder.with_name(f"{folder.name}.lock")):
        if (folder / marker).exists():
            return False
        build()
        return True
