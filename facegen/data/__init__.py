"""Datasets and datamodules: meshes (procedural, ICT-FaceKit, CoMA, FaceScape), images, synthetic faces.

Import the datamodules from their modules (``facegen.data.meshes.MeshDataModule``,
``facegen.data.images.ImageDataModule``, ``facegen.data.synthetic``) so that using one does not import
the dependencies of the others.
"""
