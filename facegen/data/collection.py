"""The in-memory form of a mesh dataset: registered meshes in mm with identity / expression labels and splits."""
from __future__ import annotations

import dataclasses

import numpy as np

from facegen.errors import MeshFormatError
from facegen.shapes import assert_shape

SPLITS = ("train", "val", "test")


@dataclasses.dataclass
class MeshCollection:
    """Registered face meshes with labels, all in millimetres.

    Attributes:
        vertices: ``[N, V, 3] float32`` mm (an ``np.memmap`` when read from the cache).
        identity: ``[N] int64`` index into ``identity_names``.
        expression: ``[N] int64`` index into ``expression_names``.
        identity_names: subject names.
        expression_names: expression (style) labels, index 0 = ``"neutral"``.
        faces: ``[F, 3] int64`` triangles shared by all meshes.
        template: ``[V, 3] float32`` mm: the source's neutral/mean template mesh.
        split: ``[N]`` ``"train"`` / ``"val"`` / ``"test"``.
    """

    vertices: np.ndarray
    identity: np.ndarray
    expression: np.ndarray
    identity_names: list[str]
    expression_names: list[str]
    faces: np.ndarray
    template: np.ndarray
    split: np.ndarray

    def __len__(self) -> int:
        return len(self.identity)

    def indices(self, split: str) -> np.ndarray:
        """``[n] int64`` rows of the samples in ``split`` (ascending)."""
        return np.flatnonzero(self.split == split)

    def subset(self, indices: np.ndarray) -> MeshCollection:
        """The rows ``indices`` as a new collection with in-memory arrays (names, faces, template shared)."""
        indices = np.asarray(indices, dtype=np.int64)
        return dataclasses.replace(
            self,
            vertices=np.asarray(self.vertices[indices], dtype=np.float32),
            identity=self.identity[indices],
            expression=self.expression[indices],
            split=self.split[indices],
        )

    def validate(self, where: str) -> None:
        """Check shapes and label ranges.

        Raises:
            MeshFormatError: naming ``where`` and the offending array.
        """
        n, v = len(self.identity), self.template.shape[0]
        for name, shape in (("vertices", [n, v, 3]), ("expression", [n]), ("split", [n]), ("template", [v, 3]),
                            ("faces", ["F", 3])):
            assert_shape(getattr(self, name), shape, f"{where}: {name}", error=MeshFormatError)
        if self.faces.size and self.faces.max() >= v:
            raise MeshFormatError(f"{where}: faces index vertex {self.faces.max()}, the template has {v} vertices")
        if not self.expression_names or self.expression_names[0] != "neutral":
            raise MeshFormatError(f"{where}: expression_names[0] must be 'neutral', got {self.expression_names[:1]}")
        for name, labels, names in (
            ("identity", self.identity, self.identity_names),
            ("expression", self.expression, self.expression_names),
        ):
            if n and (labels.min() < 0 or labels.max() >= len(names)):
                raise MeshFormatError(f"{where}: {name} labels outside [0, {len(names)})")
        unknown = set(np.unique(self.split)) - set(SPLITS)
        if unknown:
            raise MeshFormatError(f"{where}: split values {sorted(unknown)}, expected {list(SPLITS)}")
