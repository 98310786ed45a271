"""Face keypoints of still images: landmark files (CSV / JSON) with named regions, and a mean template.

A :class:`Keypoints` holds, per image name, ``[K, 2]`` pixel coordinates (u right, v down, pixel centres
at integers, the :mod:`facegen.render.camera` convention) and named regions (``region -> point indices``).
Any point scheme works as long as the regions are named; for the 68-point Multi-PIE / iBUG scheme the
regions are known (:data:`MULTIPIE_68_REGIONS`) and need not be given.

File formats read by :func:`load_keypoints`:

- JSON: ``{"images": {name: [[u, v], ...]}, "regions": {region: [index, ...]}, "image_size": [W, H]}``
  (``regions``, ``image_size`` optional) or a plain ``{name: [[u, v], ...]}``. :meth:`Keypoints.save_json`
  writes the first form, so files round-trip.
- CSV, long form: a header with ``image``, ``x``, ``y`` and optionally ``point`` (index or name) and
  ``region``; one row per point. Rows of one image are ordered by ``point`` when it is an integer,
  else by their order in the file. Regions are collected from the ``region`` column.
- CSV, wide form: a header ``image, <p>_x, <p>_y, ...``; one row per image. The region of point ``<p>``
  is ``<p>`` without a trailing ``_<digits>`` (``eye_left_3_x`` -> region ``eye_left``).

Without region information a 68-point scheme gets :data:`MULTIPIE_68_REGIONS`, any other one a single
region ``face`` (all points).

:func:`mean_template` is the documented default for aligned crops without annotations: the 68 landmarks of
facegen's procedural mean face (:class:`facegen.morphable.ProceduralFaceModel`, seed 0, neutral, frontal,
12-degree perspective camera), normalised to their bounding box and placed into a ``box`` of the image.
"""
from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from facegen.data.images import IMAGE_EXTENSIONS
from facegen.errors import FacegenError
from facegen.morphable import ProceduralFaceModel
from facegen.render import FaceRenderer, PerspectiveCamera
from facegen.shapes import assert_shape
from facegen.utils import atomic_write


class KeypointFileError(FacegenError, ValueError):
    """A landmarks file is unreadable, has an unknown layout, or inconsistent / non-finite points."""


def _span(a: int, b: int) -> list[int]:
    return list(range(a, b))


MULTIPIE_68_REGIONS: dict[str, list[int]] = {
    "jaw": _span(0, 17),
    "brow_right": _span(17, 22),          # subject's right (image left in a frontal photo)
    "brow_left": _span(22, 27),
    "brows": _span(17, 27),
    "nose": _span(27, 36),
    "eye_right": _span(36, 42),
    "eye_left": _span(42, 48),
    "eyes": _span(36, 48),
    "lips": _span(48, 60),
    "mouth": _span(48, 68),               # outer + inner lip contour
    "face": _span(0, 68),
}
"""Regions of the 68-point Multi-PIE / iBUG-300W scheme (0-based; ``_left`` = the subject's left, as in
:mod:`facegen.morphable`)."""

DEFAULT_TEMPLATE_BOX = (0.26, 0.39, 0.74, 0.88)
"""Where :func:`mean_template` puts the landmarks' bounding box by default: ``(left, top, right, bottom)`` as
fractions of the image, for FFHQ-aligned crops (the usual StyleGAN alignment, NVlabs ffhq-dataset
``recreate_aligned_images``: a square of side ~3.8 eye-to-mouth distances centred 0.1 of that distance
below the eye midpoint, so the eyes sit at y = 0.47, x = 0.375 / 0.625 and the mouth at y = 0.74; the box
follows from the template's eye and mouth positions within its own box). Checked by eye on three
FFHQ-aligned photos. For other crops measure the box (e.g. on ``preview_landmarks.png``) and pass it."""

YALE_TEMPLATE_BOX = (0.29, 0.33, 0.71, 0.87)
"""The box for Yale faces (320x243 GIFs) after :class:`facegen.data.images.ImageDataModule`'s centre crop to
243x243 and resize: read off the 15 ``subjectNN.normal`` images (faces differ by about +-0.05 around it)."""


@dataclass
class Keypoints:
    """Keypoints of a set of images.

    Attributes:
        points: image name -> ``[K, 2]`` float32 pixel coordinates (u, v).
        regions: region name -> int64 point indices into ``K``.
        num_points: ``K``.
        default: ``[K, 2]`` used for names not in ``points`` (a template), or None.
        source: the file read (for messages), or None.
        image_size: ``(W, H)`` of the images the coordinates refer to, when known.
    """

    points: dict[str, np.ndarray]
    regions: dict[str, np.ndarray]
    num_points: int
    default: np.ndarray | None = None
    source: str | None = None
    image_size: tuple[int, int] | None = None
    _basenames: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        where = self.source or "<keypoints>"
        for name, array in list(self.points.items()):
            self.points[name] = _check_array(array, self.num_points, f"{where}: image {name!r}")
        if self.default is not None:
            self.default = _check_array(self.default, self.num_points, f"{where}: template")
        self.regions = _check_regions(self.regions, self.num_points, where)
        self._basenames = {}
        for name in self.points:
            for key in _aliases(name):
                self._basenames.setdefault(key, name)

    @property
    def names(self) -> list[str]:
        """Annotated image names, in file order."""
        return list(self.points)

    def lookup(self, name: str) -> np.ndarray | None:
        """``[K, 2]`` of image ``name``: exact name, else the same base name / stem, else the template (or None)."""
        if name in self.points:
            return self.points[name]
        for key in _aliases(name):
            if key in self._basenames:
                return self.points[self._basenames[key]]
        return self.default

    def __getitem__(self, name: str) -> np.ndarray:
        found = self.lookup(name)
        if found is None:
            raise KeyError(f"{self.source or '<keypoints>'} has no keypoints for image {name!r}")
        return found

    def __contains__(self, name: str) -> bool:
        return self.lookup(name) is not None

    def __len__(self) -> int:
        return len(self.points)

    def region(self, name: str) -> np.ndarray:
        """Point indices of region ``name``. Raises KeyError naming the known regions."""
        if name not in self.regions:
            raise KeyError(f"{self.source or '<keypoints>'} has no region {name!r}; known: {sorted(self.regions)}")
        return self.regions[name]

    def to_json(self) -> dict:
        """The JSON form read by :func:`load_keypoints` (``images``, ``regions``, ``image_size``)."""
        out = {"images": {k: np.round(v.astype(np.float64), 3).tolist() for k, v in self.points.items()},
               "regions": {k: v.tolist() for k, v in self.regions.items()}}
        if self.image_size is not None:
            out["image_size"] = list(self.image_size)
        if self.default is not None:
            out["template"] = np.round(self.default.astype(np.float64), 3).tolist()
        return out

    def save_json(self, path: str | Path) -> Path:
        """Write :meth:`to_json` atomically to ``path``; returns the path."""
        atomic_write(path, json.dumps(self.to_json()))
        return Path(path)


def _aliases(name: str) -> list[str]:
    """Looser keys for a name: its base name, and the base name without an image extension."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    keys = [base]
    suffix = Path(base).suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        keys.append(base[: -len(suffix)])
    return keys


def _check_array(array, k: int, label: str) -> np.ndarray:
    try:
        a = np.asarray(array, dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise KeypointFileError(f"{label}: keypoints are not numbers ({error}); expected [{k}, 2] pixel coordinates")
    assert_shape(a, [k, 2], f"{label}: keypoints", error=KeypointFileError, hint="(u, v) pixels")
    if not np.isfinite(a).all():
        raise KeypointFileError(f"{label}: keypoints contain NaN or inf")
    return a


def _check_regions(regions: Mapping, k: int, where: str) -> dict[str, np.ndarray]:
    out = {}
    for name, ids in dict(regions).items():
        try:
            idx = np.asarray(ids, dtype=np.int64).reshape(-1)
        except (TypeError, ValueError):
            raise KeypointFileError(f"{where}: region {name!r} is not a list of point indices") from None
        if idx.size and (idx.min() < 0 or idx.max() >= k):
            raise KeypointFileError(f"{where}: region {name!r} has indices outside 0..{k - 1}")
        out[str(name)] = idx
    return out


def default_regions(num_points: int) -> dict[str, np.ndarray]:
    """:data:`MULTIPIE_68_REGIONS` for 68 points, else ``{"face": all points}``."""
    if num_points == 68:
        return {k: np.asarray(v, np.int64) for k, v in MULTIPIE_68_REGIONS.items()}
    return {"face": np.arange(num_points, dtype=np.int64)}


def _from_json(text: str, where: str) -> Keypoints:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise KeypointFileError(f"{where}: not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise KeypointFileError(f"{where}: expected a JSON object {{\"images\": {{name: [[u, v], ...]}}, "
                                "\"regions\": {...}} or {name: [[u, v], ...]}")
    images = data.get("images", data if "regions" not in data else None)
    if not isinstance(images, dict) or not images:
        raise KeypointFileError(f"{where}: no images found; expected {{\"images\": {{name: [[u, v], ...]}}}}")
    images = {k: v for k, v in images.items() if k not in ("regions", "image_size", "template")}
    sizes = {np.asarray(v, dtype=object).shape for v in images.values()}
    first = next(iter(images.values()))
    k = len(first) if isinstance(first, Sequence) else 0
    if k == 0 or len(sizes) != 1:
        raise KeypointFileError(f"{where}: images have different or empty point lists "
                                f"(shapes {sorted(map(str, sizes))}); "
                                "every image needs the same [K, 2] points")
    regions = data.get("regions") or default_regions(k)
    size = tuple(int(s) for s in data["image_size"]) if data.get("image_size") else None
    template = data.get("template")
    return Keypoints(dict(images), regions, k, default=template, source=where, image_size=size)


_WIDE = re.compile(r"^(.+)_([xy])$", re.IGNORECASE)


def _from_csv(text: str, where: str) -> Keypoints:
    rows = list(csv.reader(io.StringIO(text)))
    rows = [r for r in rows if r and any(c.strip() for c in r)]
    if len(rows) < 2:
        raise KeypointFileError(f"{where}: CSV needs a header and at least one row")
    header = [h.strip().lower() for h in rows[0]]
    body = rows[1:]
    if "image" not in header:
        raise KeypointFileError(f"{where}: CSV header {rows[0]} has no 'image' column; expected long form "
                                "image,point,x,y[,region] or wide form image,<p>_x,<p>_y,...")
    col = {h: i for i, h in enumerate(header)}

    def number(value: str, line: int, name: str) -> float:
        try:
            return float(value)
        except ValueError:
            raise KeypointFileError(f"{where}: line {line}: {name}={value!r} is not a number") from None

    if "x" in col and "y" in col:  # long form
        per_image: dict[str, list[tuple]] = {}
        region_of: dict[str, str] = {}
        for line, row in enumerate(body, start=2):
            if len(row) < len(header):
                raise KeypointFileError(f"{where}: line {line} has {len(row)} fields, header has {len(header)}")
            image = row[col["image"]].strip()
            point = row[col["point"]].strip() if "point" in col else str(len(per_image.get(image, [])))
            xy = (number(row[col["x"]], line, "x"), number(row[col["y"]], line, "y"))
            per_image.setdefault(image, []).append((point, xy))
            if "region" in col and row[col["region"]].strip():
                region_of.setdefault(point, row[col["region"]].strip())
        order = None
        points = {}
        for image, items in per_image.items():
            if all(p.lstrip("-").isdigit() for p, _ in items):
                items = sorted(items, key=lambda t: int(t[0]))
            ids = [p for p, _ in items]
            if order is None:
                order = ids
            elif ids != order and sorted(ids) != sorted(order):
                raise KeypointFileError(f"{where}: image {image!r} has points {ids[:5]}..., "
                                        f"other images {order[:5]}...; "
                                        "every image needs the same points")
            by_id = dict(items)
            points[image] = [by_id[p] for p in order]
        k = len(order)
        if region_of:
            regions: dict[str, list[int]] = {}
            for i, p in enumerate(order):
                if p in region_of:
                    regions.setdefault(region_of[p], []).append(i)
        else:
            regions = default_regions(k)
        return Keypoints(points, regions, k, source=where)

    pairs, names = [], []
    for i, h in enumerate(header):
        m = _WIDE.match(h)
        if m and m.group(2).lower() == "x":
            j = col.get(f"{m.group(1)}_y")
            if j is None:
                raise KeypointFileError(f"{where}: column {rows[0][i]!r} has no matching '{m.group(1)}_y' column")
            pairs.append((i, j))
            names.append(m.group(1))
    if not pairs:
        raise KeypointFileError(f"{where}: CSV header {rows[0]} has neither x,y columns (long form) nor "
                                "<p>_x,<p>_y columns (wide form)")
    points = {}
    for line, row in enumerate(body, start=2):
        if len(row) < len(header):
            raise KeypointFileError(f"{where}: line {line} has {len(row)} fields, header has {len(header)}")
        points[row[col["image"]].strip()] = [(number(row[i], line, header[i]), number(row[j], line, header[j]))
                                             for i, j in pairs]
    stripped = [re.sub(r"_\d+$", "", n) for n in names]
    if len(set(stripped)) > 1 or stripped[0] != names[0]:
        regions = {}
        for i, r in enumerate(stripped):
            regions.setdefault(r, []).append(i)
        regions.setdefault("face", list(range(len(names))))
    else:
        regions = default_regions(len(names))
    return Keypoints(points, regions, len(names), source=where)


def load_keypoints(path: str | Path) -> Keypoints:
    """Read a landmarks file (CSV or JSON; layouts in the module docstring).

    Args:
        path: ``.json`` or ``.csv`` file (the content decides when the suffix is neither).

    Returns:
        :class:`Keypoints` with per-image ``[K, 2]`` float32 pixel coordinates and named regions.

    Raises:
        KeypointFileError: the file is missing or unreadable, has an unknown layout, images with different
            point counts, non-numeric / NaN coordinates or region indices out of range. The message names the file.
    """
    path = Path(path).expanduser()
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise KeypointFileError(f"{where}: landmarks file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise KeypointFileError(f"{where}: cannot read landmarks file ({error})") from None
    suffix = path.suffix.lower()
    if suffix == ".json" or (suffix != ".csv" and text.lstrip().startswith("{")):
        return _from_json(text, where)
    if suffix == ".csv" or "," in text.split("\n", 1)[0]:
        return _from_csv(text, where)
    raise KeypointFileError(f"{where}: unknown landmarks format; expected .json or .csv")


@lru_cache(maxsize=1)
def _procedural_unit_template() -> np.ndarray:
    """68 landmarks of the procedural mean face, frontal, normalised to their bounding box: ``[68, 2]`` in [0, 1]."""
    model = ProceduralFaceModel(seed=0)
    camera = PerspectiveCamera.framing(model.mean_shape, fov_degrees=12.0, margin=1.25)
    with torch.no_grad():
        uv = FaceRenderer(model, 256, camera).project(model.landmarks(model.mean_shape[None]))[0].double().numpy()
    lo, hi = uv.min(0), uv.max(0)
    return (uv - lo) / (hi - lo)


def mean_template(resolution: int, box: Sequence[float] = DEFAULT_TEMPLATE_BOX) -> Keypoints:
    """The mean 68-point template for aligned ``resolution x resolution`` crops without annotations.

    The template is facegen's procedural mean face (seed 0, neutral, frontal) projected by a 12-degree
    perspective camera; its landmarks' bounding box (jaw contour left/right, brow top, chin bottom) is
    mapped onto ``box = (left, top, right, bottom)`` given as fractions of the image
    (:data:`DEFAULT_TEMPLATE_BOX`; :data:`YALE_TEMPLATE_BOX` for Yale faces).

    Returns:
        A :class:`Keypoints` with no per-image entries and ``default`` = the ``[68, 2]`` template in pixels,
        so ``template[name]`` gives the template for any image name; regions :data:`MULTIPIE_68_REGIONS`.

    Raises:
        KeypointFileError: ``resolution < 1`` or a box outside [0, 1] / with left >= right or top >= bottom.
    """
    left, top, right, bottom = (float(b) for b in box)
    if resolution < 1 or not (0 <= left < right <= 1 and 0 <= top < bottom <= 1):
        raise KeypointFileError(f"mean_template: resolution {resolution} must be >= 1 and box {tuple(box)} "
                                "must be (left, top, right, bottom) fractions with left < right, top < bottom")
    unit = _procedural_unit_template()
    lo = np.array([left, top]) * resolution
    size = np.array([right - left, bottom - top]) * resolution
    # fractions measure the image from its border; pixel centres are at integers, the border at -0.5
    uv = lo + unit * size - 0.5
    return Keypoints({}, default_regions(68), 68, default=uv.astype(np.float32),
                     source=f"mean_template(resolution={resolution}, box={tuple(box)})",
                     image_size=(resolution, resolution))
