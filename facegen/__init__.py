"""facegen: generating and transferring facial expressions in 2D (StyleGAN2) and 3D (face meshes)."""

__version__ = "0.1.0"
