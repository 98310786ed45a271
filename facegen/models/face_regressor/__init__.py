"""A small CNN that regresses morphable-face parameters and 68 landmarks from a face image.

Trained on the face world's synthetic images, whose ground truth is known
(:func:`facegen.data.synthetic.write_image_dataset`: every parameter and the 68 projected landmarks per image);
the "parameter regressor" of model-based face autoencoders (MoFA, Tewari et al. 2017, sec. 4; Deep3DFaceRecon,
Deng et al. 2019) trained with full supervision instead of a self-supervised photometric loss. Uses: 68
landmarks on StyleGAN2 face images (StyleRig's DFR) and expression/identity coefficients of generated images
(micromotion evaluation).

One concern per module: :mod:`.network` (``FaceRegressor``, ``predict``), :mod:`.loss`, :mod:`.augmentation`,
:mod:`.data` (folders in memory), :mod:`.evaluation`, :mod:`.files` (``save_face_regressor`` /
``load_face_regressor``), :mod:`.module` (the LightningModule), :mod:`.training` (``train_face_regressor``:
Lightning Trainer on in-memory data), :mod:`.cli`.

Entry points, both through :class:`FaceRegressorModule`: ``python -m facegen.train model=face_regressor``
(``data=synthetic_faces`` with ``ground_truth=true``; writes ``<run folder>/regressor.pt``) and
``python -m facegen.models.face_regressor --data <folders> ... --out regressor.pt`` (in memory, faster on CPU).
"""
from facegen.models.face_regressor.augmentation import Augmentation, augment_images
from facegen.models.face_regressor.data import (
    FaceTensorsDataModule,
    concat_faces,
    load_faces,
    load_synthetic_faces,
)
from facegen.models.face_regressor.evaluation import evaluate_face_regressor
from facegen.models.face_regressor.files import (
    FORMAT,
    load_face_regressor,
    save_face_regressor,
)
from facegen.models.face_regressor.loss import (
    DEFAULT_WEIGHTS,
    LossWeights,
    regressor_loss,
)
from facegen.models.face_regressor.module import FaceRegressorModule, OneCycle
from facegen.models.face_regressor.network import (
    GROUPS,
    N_LANDMARKS,
    N_SH,
    FaceRegressor,
)
from facegen.models.face_regressor.training import train_face_regressor

__all__ = ["DEFAULT_WEIGHTS", "FORMAT", "GROUPS", "N_LANDMARKS", "N_SH", "Augmentation", "FaceRegressor",
           "FaceRegressorModule", "FaceTensorsDataModule", "LossWeights", "OneCycle", "augment_images", "concat_faces",
           "evaluate_face_regressor", "load_face_regressor", "load_faces", "load_synthetic_faces", "regressor_loss",
           "save_face_regressor", "train_face_regressor"]
