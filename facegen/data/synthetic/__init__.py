"""Synthetic face images and expression videos with ground truth, rendered from a morphable model.

- :mod:`~facegen.data.synthetic.render`: :class:`RenderSettings`, random face parameters (:func:`sample_faces`)
  and rendering with landmarks (:func:`render_faces`);
- :mod:`~facegen.data.synthetic.faces`: the NVlabs zip writer (:func:`write_image_dataset`), the ground truth
  (:func:`load_ground_truth`, :class:`FaceParamsDataset`) and :class:`SyntheticFacesDataModule` (the embedded
  default image data);
- :mod:`~facegen.data.synthetic.clips`: expression clips (:func:`write_expression_videos`,
  :class:`ExpressionClipDataset`, :class:`SyntheticVideosDataModule`);
- :mod:`~facegen.data.synthetic.cache`: one cache folder per generation setting, built once even when two runs
  start together.

The names below are importable from ``facegen.data.synthetic`` as before the split (configs name
``facegen.data.synthetic.SyntheticFacesDataModule``).
"""
from facegen.data.synthetic.clips import (
    ExpressionClipDataset,
    SyntheticVideosDataModule,
    write_expression_videos,
)
from facegen.data.synthetic.faces import (
    FaceParamsDataset,
    SyntheticFacesDataModule,
    image_grid,
    load_ground_truth,
    write_image_dataset,
)
from facegen.data.synthetic.render import (
    RenderSettings,
    face_renderer,
    make_ranges,
    make_render_settings,
    render_faces,
    sample_faces,
)

__all__ = [
    "ExpressionClipDataset", "FaceParamsDataset", "RenderSettings", "SyntheticFacesDataModule",
    "SyntheticVideosDataModule", "face_renderer", "image_grid", "load_ground_truth", "make_ranges",
    "make_render_settings", "render_faces", "sample_faces", "write_expression_videos", "write_image_dataset",
]
