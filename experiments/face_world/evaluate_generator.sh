#!/usr/bin/env bash
# Every face-world evaluation that needs a trained face-world StyleGAN2 (issues 6 and 7), one after another:
#   micromotion (Wu et al.): the done-when video command and the face-world tables (smile from 8 source clips with
#   W+ and with W anchors, summarised over clips; mouth_stretch)
#   StyleRig (Tewari et al.): DFR, then the RigNets on that DFR (tables + edit grids)
#
#   bash experiments/face_world/evaluate_generator.sh <generator.ckpt> [<regressor.pt>] [<out tag>]
#
# The generator and the regressor are copied first (to runs/faceworld_inputs/<tag>/), so that a generator still
# training cannot change under the DFR, whose checkpoint records the generator's fingerprint.
# Threads: set OMP_NUM_THREADS (the runs here used 1 per job). Logs: runs/faceworld_inputs/<tag>/*.log.
# PARTS="micromotion stylerig" (default both); two calls with one part each and the same tag can run side by side.
set -euo pipefail
GEN_IN=${1:?usage: evaluate_generator.sh <generator.ckpt> [<regressor.pt>] [<tag>]}
REG_IN=${2:-runs/face_regressor/regressor.pt}
TAG=${3:-$(date +%Y-%m-%d_%H-%M-%S)}
for f in "$GEN_IN" "$REG_IN"; do
  [ -f "$f" ] || { echo "evaluate_generator.sh: no such file: $f" >&2; exit 2; }
done
IN=runs/faceworld_inputs/$TAG
mkdir -p "$IN"
GEN=$IN/generator.ckpt; REG=$IN/regressor.pt
copy() { [ -f "$2" ] || { cp -L "$1" "$2.tmp$$" && mv "$2.tmp$$" "$2"; }; }   # a second call keeps the first copy
copy "$GEN_IN" "$GEN"; copy "$REG_IN" "$REG"
export WANDB_MODE=${WANDB_MODE:-disabled}
PHOTO=../shared/data/face_photos/monroe.png VIDEO=../shared/data/videos/tpsmm_driving.mp4

PARTS=${PARTS:-micromotion stylerig}
if [[ " $PARTS " == *" micromotion "* ]]; then
# issue 6: done-when 1 (real video anchors -> direction -> edit video of a projected photo)
if [ -f "$VIDEO" ] && [ -f "$PHOTO" ]; then
  t0=$(date +%s)
  python -m facegen.micromotion video="$VIDEO" ckpt_path="$GEN" target="$PHOTO" \
    out=runs/micromotion/tpsmm_monroe_$TAG > "$IN/micromotion_video.log" 2>&1
  echo "wall seconds: $(( $(date +%s) - t0 ))" >> "$IN/micromotion_video.log"
else
  echo "skipping the video command: $VIDEO or $PHOTO is absent"
fi
# issue 6: face-world tables. Smile from CLIPS source identities (clip seeds), W+ and W anchors, each summarised
# over the clips; mouth_stretch from clip 0.
for space in w_plus w; do
  for s in ${CLIPS:-0 1 2 3 4 5 6 7}; do
    python -m facegen.editing.subspace.evaluate --generator "$GEN" --regressor "$REG" --expression smile \
      --latent-space $space --clip-seed $s --out "runs/micromotion/face_world_eval_${TAG}_smile_${space}_clip$s" \
      > "$IN/micromotion_smile_${space}_clip$s.log" 2>&1
  done
  python experiments/micromotion/summarise_clips.py runs/micromotion/face_world_eval_${TAG}_smile_${space}_clip*/ \
    > "runs/micromotion/face_world_eval_${TAG}_smile_${space}.md"
done
python -m facegen.editing.subspace.evaluate --generator "$GEN" --regressor "$REG" --expression mouth_stretch \
  --out "runs/micromotion/face_world_eval_${TAG}_mouth_stretch_w_plus_clip0" > "$IN/micromotion_mouth_stretch.log" 2>&1
fi
if [[ " $PARTS " == *" stylerig "* ]]; then
# issue 7: DFR, then RigNets on it
python -m facegen.train experiment=dfr_faceworld generator_path="$GEN" landmark_model_path="$REG" \
  logger=csv callbacks.progress_bar=null hydra.run.dir="runs/dfr_faceworld/$TAG" > "$IN/dfr.log" 2>&1
python -m facegen.train experiment=stylerig_faceworld generator_path="$GEN" landmark_model_path="$REG" \
  dfr_path="runs/dfr_faceworld/$TAG/checkpoints/last.ckpt" logger=csv callbacks.progress_bar=null \
  hydra.run.dir="runs/stylerig_faceworld/$TAG" > "$IN/stylerig.log" 2>&1
fi
echo "done ($PARTS): results in runs/micromotion/*_${TAG}*, runs/dfr_faceworld/$TAG, runs/stylerig_faceworld/$TAG"
