"""FFHQ alignment of a face photo from its 68 landmarks: the recipe that made the StyleGAN training faces.

Implements the procedure of NVlabs ``ffhq-dataset`` (``download_ffhq.py``, ``recreate_aligned_images``;
Karras et al. 2019, "A Style-Based Generator Architecture for GANs", appendix A), re-written here:

1. an oriented square ("quad") from the eye centres and mouth corners: centre ``c = eye_avg + 0.1 *
   eye_to_mouth``, half side ``max(2 * |eye_to_eye|, 1.8 * |eye_to_mouth|)``, its x axis along
   ``eye_to_eye - rot90(eye_to_mouth)`` (:func:`ffhq_quad`);
2. shrink: for big faces the photo is first downsampled by the integer ``floor(side / resolution / 2)``;
3. crop to the quad's bounding box plus a border of 10% of the side;
4. pad where the quad leaves the photo: reflection padding (at least 30% of the side), blurred towards the
   padded border (Gaussian, sigma 2% of the side) and faded to the median colour;
5. transform the quad onto a ``transform_size`` square (bilinear) and downsample it to ``resolution``
   (Lanczos). FFHQ: ``resolution`` 1024, ``transform_size`` 4096; here ``transform_size`` defaults to
   ``min(4 * resolution, 4096)``, the same supersampling.

:func:`align_ffhq` also returns the exact affine map from photo pixels to aligned pixels (composed from the
five steps), so landmarks and boxes follow the face into the crop.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.ndimage
from PIL import Image

from facegen.faces.detection import as_rgb
from facegen.faces.models import FaceInputError
from facegen.shapes import assert_shape

EYE_RIGHT, EYE_LEFT = slice(36, 42), slice(42, 48)       # the subject's right eye is on the image's left
MOUTH_CORNERS = (48, 54)


def _landmarks(landmarks, error=FaceInputError) -> np.ndarray:
    lm = np.asarray(landmarks, np.float64)
    assert_shape(lm, [68, 2], "landmarks", error=error, hint="iBUG 68 points, (x, y) pixels")
    if not np.isfinite(lm).all():
        raise error("landmarks contain NaN or inf")
    return lm


def eye_centres(landmarks) -> np.ndarray:
    """``[2, 2]``: the mean of points 36-41 (image-left eye) and of points 42-47 (image-right eye), pixels."""
    lm = _landmarks(landmarks)
    return np.stack([lm[EYE_RIGHT].mean(0), lm[EYE_LEFT].mean(0)])


def ffhq_quad(landmarks, error: type[Exception] = FaceInputError) -> np.ndarray:
    """The FFHQ alignment square ``[4, 2]`` (corners top-left, bottom-left, bottom-right, top-right; pixels).

    From 68 landmarks ``[68, 2]`` (x, y): eye midpoint ``e``, eye-to-eye ``v``, eye-to-mouth ``m`` (mouth =
    midpoint of the corners 48 and 54); axis ``x = (v - rot90(m)) / |.| * max(2|v|, 1.8|m|)``, ``y = rot90(x)``,
    centre ``c = e + 0.1 m``; corners ``c - x - y, c - x + y, c + x + y, c + x - y`` (NVlabs ffhq-dataset).

    Raises:
        ``error`` (default FaceInputError): landmarks not ``[68, 2]`` or not finite.
    """
    lm = _landmarks(landmarks, error)
    eye_a, eye_b = lm[EYE_RIGHT].mean(0), lm[EYE_LEFT].mean(0)
    eye_mid, eye_vec = (eye_a + eye_b) / 2, eye_b - eye_a
    mouth_vec = (lm[MOUTH_CORNERS[0]] + lm[MOUTH_CORNERS[1]]) / 2 - eye_mid
    axis = eye_vec - np.array([-mouth_vec[1], mouth_vec[0]])          # v - rot90(m), rot90(a) = (-a_y, a_x)
    axis = axis / np.hypot(*axis) * max(2.0 * np.hypot(*eye_vec), 1.8 * np.hypot(*mouth_vec))
    down = np.array([-axis[1], axis[0]])
    centre = eye_mid + 0.1 * mouth_vec
    return np.stack([centre - axis - down, centre - axis + down, centre + axis + down, centre + axis - down])


def quad_to_output(quad, resolution: int) -> np.ndarray:
    """``[3, 3]`` affine map from pixels of the quad's image to the aligned ``resolution`` square.

    The quad's top-left corner goes to the output's top-left border ``(-0.5, -0.5)`` (pixel centres at
    integers), top-right to ``(R - 0.5, -0.5)``, bottom-left to ``(-0.5, R - 0.5)``.
    """
    q = np.asarray(quad, np.float64)
    basis = np.stack([q[3] - q[0], q[1] - q[0]], axis=1)              # columns: output x and y directions
    to_unit = np.eye(3)
    to_unit[:2, :2] = np.linalg.inv(basis)
    to_unit[:2, 2] = -to_unit[:2, :2] @ q[0]
    scale = np.array([[resolution, 0, -0.5], [0, resolution, -0.5], [0, 0, 1.0]])
    return scale @ to_unit


def ffhq_eye_positions(landmarks, resolution: int) -> np.ndarray:
    """``[2, 2]``: where the FFHQ recipe puts the two eye centres of a face with these photo ``landmarks`` in
    the aligned ``resolution`` crop (pixels), computed from the quad geometry alone (:func:`quad_to_output`).

    Two cases (mouth straight below the eye midpoint): when ``2 |eye_to_eye|`` sets the square's size (the
    faces in ``face_photos``), the eyes are at ``x = 0.375 R - 0.5`` and ``0.625 R - 0.5`` (95.5 and 159.5 at
    256 px) and ``y = (0.5 - 0.025 |eye_to_mouth| / |eye_to_eye|) R - 0.5``; when ``1.8 |eye_to_mouth|`` sets
    it, the eye midpoint is at ``y = (0.5 - 0.1 / 3.6) R - 0.5`` (120.4 at 256 px).
    """
    return apply_transform(quad_to_output(ffhq_quad(landmarks), resolution), eye_centres(landmarks))


FFHQ_EYE_X = (0.375, 0.625)
"""Eye centres' x in the FFHQ crop as fractions of its side when ``2 |eye_to_eye|`` sets the size; pixels
``fraction * R - 0.5``."""


def apply_transform(transform, points) -> np.ndarray:
    """``points [..., 2]`` pixels mapped by the affine ``transform [3, 3]`` (:class:`AlignedFace`)."""
    t = np.asarray(transform, np.float64)
    p = np.asarray(points, np.float64)
    return p @ t[:2, :2].T + t[:2, 2]


def _translate(dx: float, dy: float) -> np.ndarray:
    return np.array([[1.0, 0, dx], [0, 1.0, dy], [0, 0, 1.0]])


@dataclass
class AlignedFace:
    """An FFHQ-aligned crop.

    Attributes:
        image: ``uint8 [R, R, 3]`` the aligned crop.
        landmarks: ``[68, 2]`` float64 the input landmarks mapped into the crop (pixels, centres at integers).
        transform: ``[3, 3]`` affine map from input photo pixels to crop pixels (:func:`apply_transform`).
        quad: ``[4, 2]`` the FFHQ square in photo pixels (:func:`ffhq_quad`).
        padded: whether the recipe's blur/reflection padding was applied (the quad left the photo).
    """

    image: np.ndarray
    landmarks: np.ndarray
    transform: np.ndarray
    quad: np.ndarray
    padded: bool


def _pad(img: np.ndarray, pad: tuple[int, int, int, int], qsize: float) -> np.ndarray:
    """Step 4: reflection padding ``(left, top, right, bottom)`` blurred and faded towards the new border."""
    left, top, right, bottom = pad
    out = np.pad(img.astype(np.float32), ((top, bottom), (left, right), (0, 0)), "reflect")
    h, w = out.shape[:2]
    y, x = np.ogrid[:h, :w]
    x, y = x.astype(np.float32)[..., None], y.astype(np.float32)[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        fx = np.minimum(x / max(left, 1e-6), (w - 1 - x) / max(right, 1e-6))
        fy = np.minimum(y / max(top, 1e-6), (h - 1 - y) / max(bottom, 1e-6))
    mask = np.maximum(1.0 - fx, 1.0 - fy)                              # > 0 inside the padding, 1 at the border
    sigma = qsize * 0.02
    blurred = scipy.ndimage.gaussian_filter(out, [sigma, sigma, 0])
    out += (blurred - out) * np.clip(mask * 3.0 + 1.0, 0.0, 1.0)
    out += (np.median(out, axis=(0, 1)) - out) * np.clip(mask, 0.0, 1.0)
    return np.uint8(np.clip(np.rint(out), 0, 255))


def align_ffhq(image, landmarks, resolution: int = 1024, transform_size: int | None = None,
               enable_padding: bool = True) -> AlignedFace:
    """FFHQ-align ``image`` from its 68 ``landmarks`` (the five steps of the module docstring).

    Args:
        image: the photo (see :func:`facegen.faces.detection.as_rgb`; greyscale becomes RGB).
        landmarks: ``[68, 2]`` (x, y) pixels of ``image``, iBUG order (:func:`facegen.faces.landmarks_68`).
        resolution: side of the aligned square, pixels (FFHQ: 1024).
        transform_size: side of the supersampled square the quad is mapped onto (default ``min(4 R, 4096)``).
        enable_padding: pad where the square leaves the photo (FFHQ: on); off leaves black there.

    Returns:
        :class:`AlignedFace` (crop ``[R, R, 3]``, landmarks in it, the photo -> crop transform, the quad).

    Raises:
        FaceInputError: bad image or landmarks, ``resolution < 4``.
    """
    if int(resolution) < 4:
        raise FaceInputError(f"resolution={resolution}: expected an output side of at least 4 pixels")
    resolution = int(resolution)
    size = int(transform_size) if transform_size else min(4 * resolution, 4096)
    size = max(size, resolution)
    rgb = as_rgb(image)
    lm = _landmarks(landmarks)
    quad = ffhq_quad(lm)
    qsize = float(np.hypot(*(quad[3] - quad[0])))                     # side of the square, pixels
    to_current = np.eye(3)                                             # photo pixels -> current image pixels
    img = Image.fromarray(rgb)

    # 2. shrink by an integer factor (the quad scales by 1 / shrink, as the reference does)
    shrink = int(np.floor(qsize / resolution * 0.5))
    if shrink > 1:
        w, h = img.size
        new = (int(np.rint(w / shrink)), int(np.rint(h / shrink)))
        img = img.resize(new, Image.LANCZOS)
        quad, qsize = quad / shrink, qsize / shrink
        sx, sy = new[0] / w, new[1] / h                                # the image's true scale per axis
        to_current = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1.0]]) @ to_current

    # 3. crop to the quad's bounds plus a border
    border = max(int(np.rint(qsize * 0.1)), 3)
    lo, hi = np.floor(quad.min(0)).astype(int), np.ceil(quad.max(0)).astype(int)
    crop = (max(lo[0] - border, 0), max(lo[1] - border, 0), min(hi[0] + border, img.size[0]),
            min(hi[1] + border, img.size[1]))
    if crop[2] - crop[0] < img.size[0] or crop[3] - crop[1] < img.size[1]:
        img = img.crop(crop)
        quad = quad - crop[:2]
        to_current = _translate(-crop[0], -crop[1]) @ to_current

    # 4. pad where the quad leaves the image
    lo, hi = np.floor(quad.min(0)).astype(int), np.ceil(quad.max(0)).astype(int)
    pad = (max(-lo[0] + border, 0), max(-lo[1] + border, 0), max(hi[0] - img.size[0] + border, 0),
           max(hi[1] - img.size[1] + border, 0))
    padded = bool(enable_padding and max(pad) > border - 4)
    if padded:
        pad = tuple(int(p) for p in np.maximum(pad, int(np.rint(qsize * 0.3))))
        img = Image.fromarray(_pad(np.asarray(img), pad, qsize), "RGB")
        quad = quad + pad[:2]
        to_current = _translate(pad[0], pad[1]) @ to_current

    # 5. the quad onto the supersampled square, then down to the resolution
    img = img.transform((size, size), Image.QUAD, (quad + 0.5).flatten().tolist(), Image.BILINEAR)
    if resolution < size:
        img = img.resize((resolution, resolution), Image.LANCZOS)
    transform = quad_to_output(quad, resolution) @ to_current
    return AlignedFace(image=np.asarray(img), landmarks=apply_transform(transform, lm), transform=transform,
                       quad=ffhq_quad(lm), padded=padded)
