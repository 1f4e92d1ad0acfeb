#!/usr/bin/env bash
# Check featviz and the notebooks on a CUDA machine whose Python already has torch:
#   bash scripts/check_gpu.sh [WHEEL_DIR]
# WHEEL_DIR (optional) holds wheels of the notebook tools (ipykernel, nbclient,
# nbval, ipywidgets ...) for a machine that cannot reach PyPI.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -n "${1:-}" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/featviz-site "$1"/*.whl || exit 1
    export PYTHONPATH=/tmp/featviz-site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-} FEATVIZ_OFFLINE=1 MPLBACKEND=Agg PYTHONUNBUFFERED=1
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'on', torch.cuda.get_device_name())" || exit 1
status=0
# the GPU tests, and the unit tests of the modules that move tensors between devices
python3 -m pytest -q -p no:cacheprovider -rs ${FEATVIZ_GPU_TESTS:-tests/test_cuda.py tests/test_capture.py \
    tests/test_plots.py tests/test_explain.py tests/test_training.py tests/test_widgets.py} || status=1
# lesson 03 trains with featviz.fit, which picks the GPU by itself
python3 -m pytest -q -p no:cacheprovider --nbval-lax --nbval-current-env \
    ${FEATVIZ_GPU_NOTEBOOKS:-notebooks/03_training.ipynb notebooks/05_explorer.ipynb} || status=1
exit $status
