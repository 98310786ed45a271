"""Mesh geometry: file I/O, edges, SpiralNet++ spirals, CoMA hierarchies, Laplacian, deformation transfer."""
from facegen.geometry.deformation_transfer import (
    DeformationTransfer,
    deformation_transfer,
)
from facegen.geometry.hierarchy import MeshHierarchy, build_mesh_hierarchy
from facegen.geometry.io import Mesh, load_mesh, save_obj, unique_edges
from facegen.geometry.laplacian import uniform_laplacian_smoothing
from facegen.geometry.spiral import spiral_indices

__all__ = [
    "DeformationTransfer",
    "Mesh",
    "MeshHierarchy",
    "build_mesh_hierarchy",
    "deformation_transfer",
    "load_mesh",
    "save_obj",
    "spiral_indices",
    "uniform_laplacian_smoothing",
    "unique_edges",
]
