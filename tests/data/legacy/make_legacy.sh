#!/bin/bash
# How the fixtures of this folder were made: checkpoints written by facegen at d915e12 (before the grouped
# constructors), at tiny sizes. From the repository root, with the project's venv:
#   git worktree add ../before d915e12 && OUT=/tmp/legacy bash tests/data/legacy/make_legacy.sh
#   PYTHONPATH=../before .venv/bin/python tests/data/legacy/expected_outputs.py /tmp/legacy > expected_outputs.json
# then dfr/stylerig lose their procedural face-model buffers (the test rebuilds them; see test_legacy_checkpoints.py).
set -e
OUT=${OUT:-/tmp/legacy}
PY="env PYTHONPATH=${BEFORE:-../before} OMP_NUM_THREADS=1 WANDB_MODE=disabled .venv/bin/python"
C="logger=none evaluate_after_fit=false callbacks.progress_bar=null trainer.max_epochs=1 paths.cache_dir=$OUT/cache"
RG="+data.random_generator={z_dim: 16, w_dim: 16, img_resolution: 32, mapping_layers: 2, channel_base: 256, channel_max: 16}"
$PY -m facegen.train model=facetunegan data.n_identities=6 data.test_fraction=0.34 data.samples_per_expression=1 data.batch_size=8 model.val_triplets=2 model.eval_triplets=4 model.channels=[4,4,4,4] model.style_channels=[4,4,4,4] model.disc_channels=[4,4,4,4] model.mapping_hidden=[8,8] +trainer.limit_train_batches=1 +trainer.limit_val_batches=1 callbacks.mesh_pictures=null $C hydra.run.dir=$OUT/facetunegan
$PY -m facegen.train model=stylegan2 data.n=8 data.resolution=32 data.batch_size=4 model.channel_base=128 model.channel_max=16 model.z_dim=16 model.w_dim=16 model.mapping_layers=2 model.grid_every_kimg=1000 +trainer.limit_train_batches=1 $C hydra.run.dir=$OUT/stylegan2
$PY -m facegen.train model=dfr model.hidden=[8] data.n_train=4 data.n_val=2 data.n_test=2 data.batch_size=2 data.truth.n=0 "$RG" +trainer.limit_train_batches=1 +trainer.limit_val_batches=1 $C hydra.run.dir=$OUT/dfr
$PY -m facegen.train model=stylerig dfr_path=$OUT/dfr/checkpoints/last.ckpt model.latent_dim=4 data.n_train=4 data.n_val=2 data.n_test=2 data.batch_size=2 data.truth.n=0 "$RG" +trainer.limit_train_batches=1 +trainer.limit_val_batches=1 $C hydra.run.dir=$OUT/stylerig
$PY -m facegen.train model=face_regressor data.n=16 data.resolution=16 data.batch_size=8 "data.render={supersample:1}" model.width=4 +trainer.limit_train_batches=1 $C hydra.run.dir=$OUT/face_regressor
ls -la $OUT/*/checkpoints/last.ckpt $OUT/face_regressor/regressor.pt
