#!/usr/bin/env bash
# Issue 16's GPU check: ONE call on a GPU machine, from the repository root, about 2 minutes:
#     bash bench/gpu_check.sh                # the GPU (python3 = that machine's torch; nattools from here)
#     bash bench/gpu_check.sh --cpu-smoke    # the same parts, tiny, on the CPU: tests this script
# Prints, part by part (each under a hard time limit, so partial figures always print):
#   card     the GPU's name, memory, driver
#   alexnet  AlexNet 224 px bf16, batch 256 and 512: NAT/fixed step time per exact solver (scipy, lap),
#            time split (forward / nat_step / backward + SGD), peak GPU memory
#   jpegs    makes an ImageNet-style folder of 10,240 JPEGs (500x375 and similar) in /dev/shm
#   trainer  `train --preset imagenet` end to end for 38 steps, 15 PIL workers: img/s, time split,
#            peak memory
#   solvers  one 256x256 / 512x512 solve: scipy, lap, torch-linear-assignment (Triton), optimum checked
#   bench    python -m nattools bench --device cuda (small net, trainer vs bare loop, both on the GPU)
# Optional wheels in tmp/wheels/*.whl (lap, torch-linear-assignment; carry tmp/wheels) are unpacked
# and put on the path; without them the check runs with scipy alone.
set -u
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PY:-python3}
SMOKE=0
BUDGET=${BUDGET:-140}  # seconds in all; each part is cut to what is left
if [ "${1:-}" = "--cpu-smoke" ]; then SMOKE=1; BUDGET=900; fi
WORK=/tmp/natcheck_$$  # in memory (/dev/shm) where it has room for the JPEGs and checkpoints (~3 GB)
[ "$(df -Pk /dev/shm 2>/dev/null | awk 'NR==2 {print $4}')" -gt 4000000 ] 2>/dev/null && WORK=/dev/shm/natcheck_$$
mkdir -p "$WORK"
trap 'rm -rf "$WORK"' EXIT
TAG=$($PY -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
for w in tmp/wheels/*.whl; do  # pure-Python wheels, and compiled ones for this Python only
    case "$(basename "$w")" in *-cp3*-*) case "$w" in *"-$TAG-"*) ;; *) continue ;; esac ;; esac
    [ -f "$w" ] && $PY -m zipfile -e "$w" "$WORK/site" && echo "unpacked $(basename "$w")"
done
[ -d "$WORK/site" ] && export PYTHONPATH="$WORK/site:$PYTHONPATH"
START=$SECONDS
part() {  # part NAME SECONDS COMMAND...: run under a hard limit, cut to what is left of BUDGET
    local name=$1 limit=$2 left rc
    shift 2
    left=$((BUDGET - (SECONDS - START)))
    [ "$limit" -gt "$left" ] && limit=$left
    if [ "$limit" -lt 5 ]; then echo "== $name: skipped (the ${BUDGET} s budget is spent)"; return; fi
    echo "== $name (at $((SECONDS - START)) s, limit $limit s)"
    timeout -k 3 "$limit" "$@"
    rc=$?
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then echo "== $name: cut at $limit s (the lines above are what it finished)"
    elif [ $rc -ne 0 ]; then echo "== $name: exit status $rc"; fi
}
C="$PY bench/gpu_check.py"
if [ $SMOKE = 0 ]; then
    part card 5 nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    part alexnet 35 $C alexnet --device cuda --batches 256 512 --repeats 10
    part jpegs 20 $C jpegs --out "$WORK/jpegs" --n 10240
    part trainer 50 $C trainer --device cuda --out "$WORK/jpegs" --steps 38 --skip 15 --workers 15 --batches 256
    part solvers 15 $C solvers --device cuda --batches 256 512 --repeats 10
    part bench 15 sh -c "$C jpegs --out '$WORK/data/cifar10-jpg' --n 1536 --classes 10 --scale 0.1 && \
        NATTOOLS_DATA='$WORK/data' $PY -m nattools bench \$($PY -m nattools bench --help | grep -q -- --device \
        && echo --device cuda) --batches 256 --repeats 5 --trainer_steps 5 --trainer_epochs 2"
else
    part alexnet 240 $C alexnet --device cpu --batches 8 --repeats 1 --image_size 64
    part jpegs 60 $C jpegs --out "$WORK/jpegs" --n 96 --scale 0.25
    part trainer 300 $C trainer --device cpu --out "$WORK/jpegs" --steps 4 --skip 1 --workers 2 --batches 8 --image_size 64
    part solvers 60 $C solvers --device cpu --batches 64 --repeats 2
    part bench 240 sh -c "$C jpegs --out '$WORK/data/cifar10-jpg' --n 600 --classes 10 --scale 0.1 && \
        NATTOOLS_DATA='$WORK/data' $PY -m nattools bench \$($PY -m nattools bench --help | grep -q -- --device \
        && echo --device cpu) --batches 16 --repeats 2 --trainer_steps 2 --trainer_epochs 2"
fi
echo "== done in $((SECONDS - START)) s"
