"""Write the EMA generator of a StyleGAN2 checkpoint as a small float16 generator file, with its sha256.

    python experiments/face_world/export_generator.py <run>/checkpoints/<epoch>.ckpt experiments/face_world/generator.pt

The file (``facegen.models.stylegan2.formats.save_generator``: ``G_ema`` only, float16) is what
``facegen.generate``, ``facegen.micromotion``, ``model=dfr`` / ``model=stylerig`` (``generator_path=``) and the
evaluations read; the command that made it, the source checkpoint's image count and the run's config are kept in
its ``meta``. Prints the size and the sha256.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

from facegen.checkpoints import load
from facegen.models.stylegan2.formats import load_generator, save_generator


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("out")
    args = parser.parse_args(argv)
    G, _ = load_generator(args.checkpoint)
    checkpoint = load(args.checkpoint)
    state = checkpoint.get("stylegan2_state", {})
    config = checkpoint.get("facegen_config", {})
    save_generator(G, args.out, source=Path(args.checkpoint).name, kimg=round(state.get("cur_nimg", 0) / 1000, 2),
                   model=config.get("model"), data=config.get("data"),
                   command=" ".join(["python", *sys.argv]))
    digest = hashlib.sha256(Path(args.out).read_bytes()).hexdigest()
    print(f"{args.out}: {Path(args.out).stat().st_size / 2**20:.2f} MiB, sha256 {digest}, "
          f"{state.get('cur_nimg', 0) / 1000:.1f} kimg")


if __name__ == "__main__":
    main()
