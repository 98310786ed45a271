"""Geometry of facegen's procedural face: template mesh, regions, landmarks, identity and albedo bases.

Everything here is NumPy and deterministic; :mod:`facegen.morphable.procedural` turns it into a
:class:`~facegen.morphable.base.MorphableModel` with an identity-dependent expression rig.

Coordinates (mm): ``x`` towards the subject's left (so the subject's left eye has ``x > 0`` and
appears on the right of a frontal image), ``y`` up, ``z`` out of the face towards a frontal camera;
the plane of the ears is ``z = 0``. The surface is a grid over azimuth ``theta`` (+-100 degrees
around the vertical axis) and height ``y``: an elliptic cylinder whose half-width ``W(y)`` and
half-depth ``D(y)`` follow a face outline (narrow chin, wide cheekbones), displaced along its
normal by Gaussian features (nose, eye sockets, eyeballs, brows, cheekbones, lips, chin) defined
over the frontal coordinates ``(X, Y) = (W(y) sin theta, y)``. The grid row at the mouth is cut
open between the lip corners (the lower lip gets duplicate vertices) so the jaw can open.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.interpolate import PchipInterpolator


@dataclass(frozen=True)
class FaceShape:
    """Anatomical constants of the template face (mm). Defaults give an adult face of about
    150 mm chin-to-forehead, 140 mm wide and 97 mm deep (ear plane to nose tip)."""

    n_columns: int = 73            # grid columns over azimuth (odd: a column on the midline)
    n_rows: int = 66               # grid rows over height
    theta_max_deg: float = 100.0   # azimuth range +-theta_max (wraps slightly behind the ear plane)
    y_bottom: float = -74.0        # under the chin
    y_top: float = 70.0            # top of the forehead
    eye_x: float = 32.0            # eye centres at (+-eye_x, eye_y)
    eye_y: float = 18.0
    eye_half_width: float = 14.0   # palpebral fissure 28 mm wide
    eye_up: float = 5.0            # upper / lower lid height above / below the eye centre
    eye_lo: float = 4.0
    brow_y: float = 31.0
    nasion_y: float = 22.0
    nose_tip_y: float = -12.0
    subnasale_y: float = -22.0
    nose_tip_height: float = 20.0
    nose_bridge_height: float = 6.0
    ala_x: float = 15.0
    mouth_y: float = -40.0
    mouth_half_width: float = 25.0
    chin_y: float = -63.0


# Face outline: half-width W(y) and half-depth D(y) of the elliptic cylinder, mm.
_W_KNOTS = ([-74, -66, -55, -42, -25, 0, 20, 40, 58, 70], [14, 30, 44, 54, 62, 68, 68, 65, 58, 50])
_D_KNOTS = ([-74, -66, -55, -40, -20, 0, 20, 40, 58, 70], [54, 64, 68, 70, 72, 74, 74, 72, 66, 58])

REGION_NAMES = ("face", "eye_left", "eye_right", "eyes", "brows", "nose", "mouth", "lips", "jaw", "cheeks")


def smoothstep(edge0, edge1, x):
    """Hermite step 0 -> 1 between ``edge0`` and ``edge1`` (either order), elementwise."""
    t = np.clip((np.asarray(x, dtype=np.float64) - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def gauss(X, Y, cx, cy, sx, sy):
    """Anisotropic Gaussian bump of height 1 centred at (cx, cy) with widths (sx, sy), mm."""
    return np.exp(-0.5 * (((X - cx) / sx) ** 2 + ((Y - cy) / sy) ** 2))


@dataclass
class Template:
    """The generated template and the per-vertex facts the expression rig needs.

    Shapes: V vertices (grid ``n_rows x n_columns`` plus the lower-lip duplicates), F triangles.
    """

    shape: FaceShape
    vertices: np.ndarray           # [V, 3] float64 mm
    faces: np.ndarray              # [F, 3] int64
    normals: np.ndarray            # [V, 3] unit normals of the template
    frontal_xy: np.ndarray         # [V, 2] frontal coordinates (X, Y) of the underlying cylinder, mm
    grid_st: np.ndarray            # [V, 2] grid coordinates in [-1, 1] (column, row)
    grid_ij: np.ndarray            # [V, 2] int column and row
    theta: np.ndarray              # [V] azimuth, radians (0 on the midline, +-pi/2 at the ear plane)
    lip_side: np.ndarray           # [V] +1 on/above the mouth line (upper lip), -1 below (lower lip and duplicates)
    mouth_corners: np.ndarray      # [2] vertex ids of the right (x<0) and left (x>0) lip corners
    slit_upper: np.ndarray         # [S] upper-lip vertices along the open mouth line
    slit_lower: np.ndarray         # [S] their lower-lip duplicates
    lid_upper: np.ndarray          # [V] vertex on the upper lid line in the same column (or -1)
    lid_lower: np.ndarray          # [V] vertex on the lower lid line in the same column (or -1)
    blink_weight: np.ndarray       # [2, V] closure fraction per eye (0 = right eye, 1 = left eye)
    eye_opening: np.ndarray        # [V] bool: between the lid lines
    landmark_indices: np.ndarray   # [68] Multi-PIE order
    regions: dict[str, np.ndarray] = field(default_factory=dict)

    def grid_index(self, i: int, j: int) -> int:
        return j * self.shape.n_columns + i


def _outline(shape: FaceShape):
    w = PchipInterpolator(*_W_KNOTS)
    d = PchipInterpolator(*_D_KNOTS)
    return w, d


def _grid(shape: FaceShape) -> tuple[np.ndarray, np.ndarray, int]:
    """Azimuths [n_columns] (denser on the midline) and heights [n_rows] with one row at the mouth."""
    s = np.linspace(-1.0, 1.0, shape.n_columns)
    theta = np.deg2rad(shape.theta_max_deg) * (0.6 * s + 0.4 * s ** 3)
    span = shape.y_top - shape.y_bottom
    j_mouth = int(round((shape.mouth_y - shape.y_bottom) / span * (shape.n_rows - 1)))
    rows = np.arange(shape.n_rows)
    y = np.where(rows <= j_mouth,
                 shape.y_bottom + rows / j_mouth * (shape.mouth_y - shape.y_bottom),
                 shape.mouth_y + (rows - j_mouth) / (shape.n_rows - 1 - j_mouth) * (shape.y_top - shape.mouth_y))
    return theta, y, j_mouth


def lid_lines(shape: FaceShape, X: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Upper and lower lid heights (mm) over frontal X for the eye at x = side * eye_x; mask inside the fissure."""
    s = (X - side * shape.eye_x) / shape.eye_half_width
    inside = np.abs(s) < 1.0
    bulge = np.clip(1.0 - s ** 2, 0.0, None)
    return shape.eye_y + shape.eye_up * bulge, shape.eye_y - shape.eye_lo * bulge, inside


def nose_field(shape: FaceShape, X, Y):
    """Height of the nose above the cylinder (mm): ridge from nasion to tip plus alae."""
    length = shape.nasion_y - shape.nose_tip_y
    t = np.clip((shape.nasion_y - Y) / length, 0.0, 1.0)
    ridge = shape.nose_bridge_height + (shape.nose_tip_height - shape.nose_bridge_height) * t ** 1.5
    ridge = np.where(Y > shape.nasion_y, shape.nose_bridge_height * np.exp(-((Y - shape.nasion_y) / 8.0) ** 2), ridge)
    ridge = np.where(Y < shape.nose_tip_y, shape.nose_tip_height * np.exp(-((Y - shape.nose_tip_y) / 5.5) ** 2), ridge)
    width = 5.5 + 5.0 * t
    alae = sum(7.0 * gauss(X, Y, side * shape.ala_x, shape.nose_tip_y - 5.0, 5.0, 5.0) for side in (-1, 1))
    return ridge * np.exp(-0.5 * (X / width) ** 2) + alae


def lip_fields(shape: FaceShape, X, Y) -> tuple[np.ndarray, np.ndarray]:
    """Upper and lower vermilion bulges (mm), each of peak height 1 before scaling."""
    hw = shape.mouth_half_width
    upper = gauss(X, Y, 0.0, shape.mouth_y + 3.5, 0.75 * hw, 2.8)
    lower = gauss(X, Y, 0.0, shape.mouth_y - 5.0, 0.7 * hw, 3.5)
    return upper, lower


def brow_curve(shape: FaceShape, X) -> tuple[np.ndarray, np.ndarray]:
    """Brow centre-line height (mm) over X and a mask over each brow's extent (inner end 16 mm from the eye centre)."""
    offset = np.abs(X) - shape.eye_x
    s = np.clip((offset + 2.0) / 18.0, -1.0, 1.0)
    return shape.brow_y + 3.0 * (1.0 - s ** 2), (offset > -16.0) & (offset < 20.0)


def feature_height(shape: FaceShape, X, Y):
    """Sum of all facial features as a height above the base cylinder (mm)."""
    ex, ey = shape.eye_x, shape.eye_y
    h = nose_field(shape, X, Y)
    for side in (-1, 1):
        h = h - 10.0 * gauss(X, Y, side * ex, ey + 1.0, 15.0, 10.0)      # eye socket
        h = h + 6.0 * gauss(X, Y, side * ex, ey, 11.0, 7.0)              # eyeball under the lids
        h = h + 5.0 * gauss(X, Y, side * (ex + 2.0), shape.brow_y, 20.0, 6.0)  # brow ridge
        h = h + 6.0 * gauss(X, Y, side * 45.0, 0.0, 14.0, 12.0)          # cheekbone
        h = h + 4.0 * gauss(X, Y, side * 35.0, -20.0, 15.0, 14.0)        # cheek
        h = h - 3.0 * gauss(X, Y, side * 58.0, 35.0, 8.0, 12.0)          # temple
        up, _, inside = lid_lines(shape, X, side)
        h = h + 1.2 * inside * np.exp(-0.5 * ((Y - up) / 1.2) ** 2)     # upper lid fold
    brow_y, on_brow = brow_curve(shape, X)
    h = h + 1.5 * on_brow * np.exp(-0.5 * ((Y - brow_y) / 2.0) ** 2)   # brow hair
    upper, lower = lip_fields(shape, X, Y)
    h = h + 12.0 * gauss(X, Y, 0.0, shape.mouth_y + 2.0, 26.0, 18.0)  # dental arch
    h = h + 4.0 * upper + 5.0 * lower
    h = h - 2.5 * gauss(X, Y, 0.0, shape.mouth_y, 0.9 * shape.mouth_half_width, 1.2)  # mouth line
    h = h - 1.0 * gauss(X, Y, 0.0, shape.mouth_y + 10.0, 2.5, 4.0)   # philtrum
    h = h - 3.0 * gauss(X, Y, 0.0, shape.mouth_y - 13.0, 14.0, 3.0)  # mentolabial sulcus
    h = h + 7.0 * gauss(X, Y, 0.0, shape.chin_y, 13.0, 7.0)          # chin
    h = h + 4.0 * gauss(X, Y, 0.0, 55.0, 40.0, 20.0)                 # forehead
    return h


def _grid_faces(nu: int, nv: int) -> np.ndarray:
    i, j = np.meshgrid(np.arange(nu - 1), np.arange(nv - 1))
    a = (j * nu + i).ravel()
    b, c, d = a + 1, a + nu + 1, a + nu
    return np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)]).astype(np.int64)


def build_template(shape: FaceShape = FaceShape()) -> Template:
    """Generate the template mesh and its per-vertex annotations (see module docstring)."""
    nu, nv = shape.n_columns, shape.n_rows
    width, depth = _outline(shape)
    theta_1d, y_1d, j_mouth = _grid(shape)
    theta, y = np.meshgrid(theta_1d, y_1d)                    # [nv, nu]
    W, D = width(y), depth(y)
    base = np.stack([W * np.sin(theta), y, D * np.cos(theta)], axis=-1)
    d_theta = np.stack([W * np.cos(theta), np.zeros_like(y), -D * np.sin(theta)], axis=-1)
    d_y = np.stack([width(y, 1) * np.sin(theta), np.ones_like(y), depth(y, 1) * np.cos(theta)], axis=-1)
    normals = np.cross(d_theta, d_y)
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    X, Y = base[..., 0], base[..., 1]
    grid_vertices = base + feature_height(shape, X, Y)[..., None] * normals

    # Open the mouth line between the lip corners: cells below it use duplicate vertices.
    slit_cols = np.flatnonzero(np.abs(X[j_mouth]) < shape.mouth_half_width)
    corners = np.array([slit_cols[0], slit_cols[-1]])
    interior = slit_cols[1:-1]
    slit_upper = j_mouth * nu + interior
    n_grid = nu * nv
    slit_lower = n_grid + np.arange(len(interior))
    faces = _grid_faces(nu, nv)
    below = np.repeat((np.arange(nv - 1) == j_mouth - 1), nu - 1)
    below = np.concatenate([below, below])
    remap = np.arange(n_grid)
    remap_lower = remap.copy()
    remap_lower[slit_upper] = slit_lower
    faces[below] = remap_lower[faces[below]]

    flat = lambda a: a.reshape(n_grid, *a.shape[2:])  # noqa: E731
    dup = lambda a: np.concatenate([flat(a), flat(a)[slit_upper]])  # noqa: E731
    ii, jj = np.meshgrid(np.arange(nu), np.arange(nv))
    grid_ij = dup(np.stack([ii, jj], -1))
    grid_st = grid_ij / np.array([nu - 1, nv - 1]) * 2.0 - 1.0
    frontal_xy = dup(np.stack([X, Y], -1))
    lip_side = np.where(grid_ij[:, 1] >= j_mouth, 1, -1)
    lip_side[slit_lower] = -1

    template = Template(
        shape=shape, vertices=dup(grid_vertices), faces=faces, normals=dup(normals), frontal_xy=frontal_xy,
        grid_st=grid_st, grid_ij=grid_ij, theta=dup(theta), lip_side=lip_side,
        mouth_corners=j_mouth * nu + corners, slit_upper=slit_upper, slit_lower=slit_lower,
        lid_upper=None, lid_lower=None, blink_weight=None, eye_opening=None, landmark_indices=None)
    _annotate_eyes(template, X, y_1d)
    template.landmark_indices = _landmarks(template, width)
    template.regions = _regions(template, width)
    return template


def _annotate_eyes(t: Template, X_grid: np.ndarray, y_1d: np.ndarray) -> None:
    """Lid lines per column and per-vertex closure fractions (upper lid moves onto the lower lid)."""
    shape = t.shape
    V = len(t.vertices)
    lid_upper = np.full(V, -1)
    lid_lower = np.full(V, -1)
    blink = np.zeros((2, V))
    opening = np.zeros(V, dtype=bool)
    j_eye = int(np.argmin(np.abs(y_1d - shape.eye_y)))
    for e, side in enumerate((-1, 1)):
        up, lo, inside = lid_lines(shape, X_grid[j_eye], side)
        for i in np.flatnonzero(inside):
            j_up = int(np.argmin(np.abs(y_1d - up[i])))
            j_lo = int(np.argmin(np.abs(y_1d - lo[i])))
            if j_up <= j_lo:
                continue
            column = [t.grid_index(i, j) for j in range(len(y_1d))]
            for j in range(j_lo + 1, j_up + 6):
                v = column[j]
                lid_upper[v], lid_lower[v] = column[j_up], column[j_lo]
                if j <= j_up:
                    blink[e, v] = (j - j_lo) / (j_up - j_lo)
                    opening[v] = j < j_up
                else:  # lid skin above the fold follows, fading out towards the brow
                    blink[e, v] = 1.0 if j <= j_up + 2 else (j_up + 5 - j) / 3.0
    t.lid_upper, t.lid_lower, t.blink_weight, t.eye_opening = lid_upper, lid_lower, blink, opening


def _nearest(t: Template, points, candidates: np.ndarray | None = None) -> np.ndarray:
    """Vertex ids nearest (in frontal X, Y) to each point [N, 2], among front-facing grid vertices."""
    mask = (t.vertices[:, 2] > 0) & (np.arange(len(t.vertices)) < t.shape.n_columns * t.shape.n_rows)
    pool = np.flatnonzero(mask) if candidates is None else np.asarray(candidates)
    d = np.linalg.norm(t.frontal_xy[pool][None] - np.asarray(points, dtype=np.float64)[:, None], axis=-1)
    return pool[np.argmin(d, axis=1)]


def _landmarks(t: Template, width) -> np.ndarray:
    """68 vertex ids in Multi-PIE order; index 0 is on the subject's right (x < 0)."""
    s = t.shape
    phi = np.linspace(-np.pi / 2, np.pi / 2, 17)
    top, bottom = s.eye_y - 8.0, s.y_bottom + 1.0
    jaw_y = top - (top - bottom) * np.cos(phi)
    jaw_x = np.sign(phi) * np.minimum(63.0 * np.abs(np.sin(phi)), 0.92 * width(jaw_y))
    jaw = _nearest(t, np.stack([jaw_x, jaw_y], 1))

    brow_x = s.eye_x + np.linspace(18.0, -14.0, 5)                  # outer -> inner
    brow_y, _ = brow_curve(s, brow_x)
    brows = np.concatenate([_nearest(t, np.stack([-brow_x, brow_y], 1)),
                            _nearest(t, np.stack([brow_x[::-1], brow_y[::-1]], 1))])
    bridge_y = np.linspace(s.nasion_y, s.nose_tip_y, 4)
    base_x = np.array([-9.0, -4.5, 0.0, 4.5, 9.0])
    base_y = s.subnasale_y + np.array([3.0, 1.0, 0.0, 1.0, 3.0])
    nose = _nearest(t, np.concatenate([np.stack([np.zeros(4), bridge_y], 1), np.stack([base_x, base_y], 1)]))

    def eye(side: int, order: list[int]) -> np.ndarray:
        cx, a = side * s.eye_x, s.eye_half_width
        xs = cx + side * a * np.array([1.0, 1 / 3, -1 / 3, -1.0, -1 / 3, 1 / 3])   # outer, upper x2, inner, lower x2
        up, lo, _ = lid_lines(s, xs, side)
        ys = np.array([s.eye_y, up[1], up[2], s.eye_y, lo[4], lo[5]])
        return _nearest(t, np.stack([xs, ys], 1))[order]
    # right eye (x<0): 36 outer, 37-38 upper (outer->inner), 39 inner, 40-41 lower (inner->outer)
    eye_right = eye(-1, [0, 1, 2, 3, 4, 5])
    # left eye (x>0): 42 inner, 43-44 upper (inner->outer), 45 outer, 46-47 lower (outer->inner)
    eye_left = eye(1, [3, 2, 1, 0, 5, 4])

    hw, my = s.mouth_half_width, s.mouth_y
    thirds = hw * np.array([-2 / 3, -1 / 3, 0.0, 1 / 3, 2 / 3])
    outer_upper = _nearest(t, np.stack([thirds, my + np.array([5.0, 8.0, 7.0, 8.0, 5.0])], 1))
    outer_lower = _nearest(t, np.stack([thirds[::-1], my - np.array([5.0, 7.5, 8.5, 7.5, 5.0])], 1))
    inner_x = np.array([-(hw - 3.0), -hw / 3, 0.0, hw / 3, hw - 3.0])
    inner_upper = _nearest(t, np.stack([inner_x, np.full(5, my)], 1), candidates=t.slit_upper)
    inner_lower = _nearest(t, np.stack([inner_x[1:4][::-1], np.full(3, my)], 1), candidates=t.slit_lower)
    right_corner, left_corner = t.mouth_corners
    mouth = np.concatenate([[right_corner], outer_upper, [left_corner], outer_lower,
                            [inner_upper[0]], inner_upper[1:4], [inner_upper[4]], inner_lower])
    return np.concatenate([jaw, brows, nose, eye_right, eye_left, mouth]).astype(np.int64)


def _regions(t: Template, width) -> dict[str, np.ndarray]:
    """Named vertex sets (LongTensor-ready int64 arrays), defined in frontal coordinates."""
    s = t.shape
    X, Y = t.frontal_xy[:, 0], t.frontal_xy[:, 1]
    front = t.vertices[:, 2] > 0
    hw, my = s.mouth_half_width, s.mouth_y
    eye = {side: ((X - side * s.eye_x) / (s.eye_half_width + 4.0)) ** 2 + ((Y - s.eye_y) / 9.0) ** 2 <= 1.0
           for side in (-1, 1)}
    brow_y, on_brow = brow_curve(s, X)
    brows = on_brow & (np.abs(Y - brow_y) <= 4.5)
    t_nose = np.clip((s.nasion_y - Y) / (s.nasion_y - s.nose_tip_y), 0.0, 1.0)
    nose = (Y >= s.subnasale_y - 2.0) & (Y <= s.nasion_y + 4.0) & (np.abs(X) <= 9.0 + 12.0 * t_nose)
    lips = (X / (hw + 1.0)) ** 2 + ((Y - my + 0.5) / 10.5) ** 2 <= 1.0
    mouth = (X / (hw + 10.0)) ** 2 + ((Y - my) / 17.0) ** 2 <= 1.0
    jaw = (Y <= my - 10.0) | ((np.abs(X) >= 0.75 * width(Y)) & (Y <= s.eye_y - 5.0))
    cheeks = np.zeros_like(front)
    for side in (-1, 1):
        cheeks |= ((X - side * 40.0) / 18.0) ** 2 + ((Y + 15.0) / 20.0) ** 2 <= 1.0
    cheeks &= ~(nose | mouth | eye[-1] | eye[1])
    face = ((X / 66.0) ** 2 + ((Y + 5.0) / 72.0) ** 2 <= 1.0) | jaw
    masks = {"face": face, "eye_left": eye[1], "eye_right": eye[-1], "eyes": eye[1] | eye[-1], "brows": brows,
             "nose": nose, "mouth": mouth, "lips": lips, "jaw": jaw, "cheeks": cheeks}
    return {name: np.flatnonzero(masks[name] & front).astype(np.int64) for name in REGION_NAMES}


# ---------------------------------------------------------------------------------------------- identity

GLOBAL_IDENTITY_NAMES = (
    "face_width", "face_height", "face_depth", "jaw_width", "chin_length", "mouth_width", "lip_thickness",
    "nose_length", "nose_protrusion", "nose_width", "eye_spacing", "eye_size", "brow_height", "cheekbones",
    "chin_protrusion",
)


def identity_basis(t: Template, n_random: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """Identity offsets [len(GLOBAL_IDENTITY_NAMES) + n_random, V, 3] (mm per standard deviation) and names.

    The global fields are anatomical warps sized to about one adult standard deviation (face width
    +-3.5 mm per side, mouth width +-4 mm, nose length +-4 mm, ...). The random fields are smooth
    cosine series over the grid (frequencies 0..3, amplitude falling as 1 / (1 + m^2 + n^2)), mostly
    along the normal, RMS 1.5 mm, drawn from ``np.random.default_rng(seed)``.
    """
    s = t.shape
    x, y, z = t.vertices.T
    X, Y = t.frontal_xy.T
    n = t.normals
    zero = np.zeros_like(x)

    def vec(dx=zero, dy=zero, dz=zero):
        return np.stack([dx + zero, dy + zero, dz + zero], axis=-1)

    eye_window = sum(gauss(X, Y, side * s.eye_x, s.eye_y, 13.0, 9.0) for side in (-1, 1))
    eye_centre_x = np.sign(X) * s.eye_x
    upper, lower = lip_fields(s, X, Y)
    nose_mid = 0.5 * (s.nasion_y + s.subnasale_y)
    fields = {
        "face_width": vec(dx=0.05 * x),
        "face_height": vec(dy=0.04 * y),
        "face_depth": vec(dz=0.05 * z),
        "jaw_width": vec(dx=0.08 * x * smoothstep(-10.0, -60.0, y)),
        "chin_length": vec(dy=-4.0 * smoothstep(s.mouth_y, s.mouth_y - 25.0, Y)),
        "mouth_width": vec(dx=0.15 * X * gauss(X, Y, 0.0, s.mouth_y, 30.0, 12.0)),
        "lip_thickness": 1.5 * (upper + lower)[:, None] * n,
        "nose_length": vec(dy=0.12 * (Y - s.nasion_y) * gauss(X, Y, 0.0, nose_mid, 14.0, 20.0)),
        "nose_protrusion": 0.15 * nose_field(s, X, Y)[:, None] * n,
        "nose_width": vec(dx=0.15 * X * gauss(X, Y, 0.0, s.nose_tip_y - 3.0, 16.0, 10.0)),
        "eye_spacing": vec(dx=2.5 * np.tanh(X / 5.0) * eye_window),
        "eye_size": vec(dx=0.12 * (X - eye_centre_x) * eye_window, dy=0.12 * (Y - s.eye_y) * eye_window),
        "brow_height": vec(dy=2.5 * sum(gauss(X, Y, side * (s.eye_x + 2.0), s.brow_y, 22.0, 7.0) for side in (-1, 1))),
        "cheekbones": 3.0 * sum(gauss(X, Y, side * 45.0, 0.0, 14.0, 12.0) for side in (-1, 1))[:, None] * n,
        "chin_protrusion": vec(dz=4.0 * gauss(X, Y, 0.0, s.chin_y, 18.0, 12.0)),
    }
    rng = np.random.default_rng(seed)
    su, sv = t.grid_st.T
    freq = np.arange(4)
    cos_u = np.cos(np.pi * freq[:, None] * (su[None] + 1.0) / 2.0)      # [4, V]
    cos_v = np.cos(np.pi * freq[:, None] * (sv[None] + 1.0) / 2.0)
    decay = 1.0 / (1.0 + freq[:, None] ** 2 + freq[None, :] ** 2)        # [4, 4]
    names = list(GLOBAL_IDENTITY_NAMES)
    bases = [fields[name] for name in names]
    for k in range(n_random):
        coeffs = rng.standard_normal((4, 4, 4)) * decay[None]             # [channel, m, n]
        series = np.einsum("cmn,mv,nv->cv", coeffs, cos_u, cos_v)          # [4, V]: normal, x, y, z
        offset = series[0][:, None] * n + 0.3 * series[1:].T
        offset -= offset.mean(axis=0)
        bases.append(1.5 * offset / np.sqrt((offset ** 2).sum(axis=1).mean()))
        names.append(f"random_{k}")
    return np.stack(bases).astype(np.float64), names


# ---------------------------------------------------------------------------------------------- albedo

ALBEDO_NAMES = ("skin_tone", "redness", "yellowness", "lip_red", "lip_dark", "brow_dark", "iris_colour",
                "sclera", "cheek_blush", "beard_shadow")


def albedo_model(t: Template) -> tuple[np.ndarray, np.ndarray]:
    """Mean albedo [V, 3] in [0, 1] and basis [len(ALBEDO_NAMES), V, 3] (colour change per standard deviation)."""
    s = t.shape
    X, Y = t.frontal_xy.T
    upper, lower = lip_fields(s, X, Y)
    lips = np.clip(1.4 * np.maximum(upper, lower), 0.0, 1.0)
    brow_y, on_brow = brow_curve(s, X)
    brows = on_brow * np.exp(-0.5 * ((Y - brow_y) / 2.2) ** 2)
    dist_eye = np.minimum(np.hypot(X - s.eye_x, Y - s.eye_y), np.hypot(X + s.eye_x, Y - s.eye_y))
    opening = t.eye_opening.astype(np.float64)
    iris = opening * smoothstep(5.5, 4.5, dist_eye)
    pupil = opening * smoothstep(2.2, 1.6, dist_eye)
    lash = np.isin(np.arange(len(X)), np.concatenate([t.lid_upper[t.lid_upper >= 0], t.lid_lower[t.lid_lower >= 0]]))
    lash = lash & ~t.eye_opening
    skin = 1.0 - np.maximum(opening, lips)
    cheeks = sum(gauss(X, Y, side * 40.0, -10.0, 12.0, 10.0) for side in (-1, 1))
    beard = smoothstep(-20.0, -35.0, Y) * (1.0 - lips) * (np.abs(X) < 60.0)

    def colour(rgb, weight):
        return np.asarray(rgb, dtype=np.float64)[None] * np.asarray(weight, dtype=np.float64)[:, None]

    mean = colour([0.80, 0.60, 0.50], np.ones_like(X))
    mean += colour([0.72 - 0.80, 0.38 - 0.60, 0.38 - 0.50], lips)
    mean += colour([0.06, -0.02, -0.02], cheeks)
    mean += colour([0.35 - 0.80, 0.25 - 0.60, 0.20 - 0.50], brows)
    mean = np.where(opening[:, None] > 0, np.array([0.92, 0.90, 0.88]), mean)
    mean = mean * (1.0 - iris[:, None]) + np.array([0.30, 0.20, 0.12]) * iris[:, None]
    mean = mean * (1.0 - pupil[:, None]) + 0.05 * pupil[:, None]
    mean = np.where(lash[:, None], np.array([0.25, 0.18, 0.15]), mean)
    basis = np.stack([
        colour([-0.18, -0.16, -0.14], skin),
        colour([0.05, -0.03, -0.03], skin),
        colour([0.02, 0.03, -0.05], skin),
        colour([0.08, -0.06, -0.04], lips),
        colour([-0.10, -0.10, -0.10], lips),
        colour([-0.12, -0.12, -0.12], brows),
        colour([-0.10, 0.05, 0.15], iris * (1.0 - pupil)),
        colour([0.03, -0.05, -0.05], opening * (1.0 - iris)),
        colour([0.06, -0.02, -0.02], cheeks),
        colour([-0.06, -0.05, -0.04], beard),
    ])
    return np.clip(mean, 0.0, 1.0), basis
