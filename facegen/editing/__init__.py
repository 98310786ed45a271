"""Latent-space editing of StyleGAN2 generators: StyleSpace channels (:mod:`facegen.editing.stylespace`) and
micromotion subspaces (:mod:`facegen.editing.subspace`). Projection (GAN inversion) is a service of the
generator itself: :mod:`facegen.models.stylegan2.projection`."""
