#!/usr/bin/env bash
# `bench_train` on a CUDA GPU beside Ultralytics, on a machine that has PyTorch but no Rust
# toolchain (what `DEVICE=gpu cargo xtask bench-train` does where both are there). BENCH is a
# bench_train binary built elsewhere with `--features libtorch` against the same PyTorch version
# as this machine's (`LIBTORCH_USE_PYTORCH=1 cargo build --release -p train --features libtorch
# --example bench_train`); PYTHON (default python3) has torch and the `ultralytics` wheel.
#
# usage: gpu_bench.sh BENCH DATA_DIR EPOCHS [BATCH] [IMGSZ] [TRAIN_IMAGES]
set -euo pipefail
bench=$1 data=$2 epochs=$3 batch=${4:-16} imgsz=${5:-320} images=${6:-}
python=${PYTHON:-python3}
here=$(cd "$(dirname "$0")" && pwd)
# libtorch's shared libraries are the ones inside the torch package (the binary has no rpath).
torch_lib=$("$python" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH=$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export DEVICE=gpu ULTRALYTICS_PYTHON=$python ULTRALYTICS_SCRIPT=$here/ultralytics_train.py
"$python" -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name(0))'
exec "$bench" "$data" "$epochs" "$batch" "$imgsz" $images
