#!/bin/bash
# The recorded run in this folder: random-weights ViT-S/16 at 112 px (all 12 layers) and MiniRocket
# on 20 small bundled UCR datasets, official splits. Resumable: rerun after an interruption.
# --search-trials 0: the run was recorded before the `searched` summary existed (a resume needs the
# same settings); benchmarks/search.py measures the search on 12 of these datasets.
# Run from the repository root: bash benchmarks/ucr20/run.sh  (writes into benchmarks/ucr20)
set -e
export OMP_NUM_THREADS=2 HF_HUB_OFFLINE=1
RESUME=""
[ -f benchmarks/ucr20/config.json ] && RESUME="--resume"
tivit bench --archive ucr \
  --datasets BeetleFly,BirdChicken,Coffee,Beef,FaceFour,Car,Herring,DodgerLoopWeekend,DodgerLoopGame,BME,ECG200,GunPoint,ArrowHead,Ham,DiatomSizeReduction,Chinatown,GunPointAgeSpan,GunPointMaleVersusFemale,GunPointOldVersusYoung,Earthquakes \
  --encoder vit_small_patch16_224 --encoder-args img_size=112 --weights random --layers all \
  --baselines minirocket --search-trials 0 --seed 0 --out benchmarks/ucr20 $RESUME
