#!/usr/bin/env bash
# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Run HERE (a machine with PyPI access): download the wheels the real-GPU kit installs on the GPU machine,
# which has no internet (Ubuntu 24.04, Python 3.12, x86_64). Result: tests/gpu/wheels/.
#   PY_VERSION=3.12 (default) PLATFORM=manylinux2014_x86_64 (default) tests/gpu/fetch-wheels.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
py_version=${PY_VERSION:-3.12}
platform=${PLATFORM:-manylinux2014_x86_64}
dest=${WHEELS_DIR:-$here/wheels}
pip=${PIP:-$root/.venv/bin/pip}
mkdir -p "$dest"
# ansible-core pulls jinja2, MarkupSafe, PyYAML, cryptography (+cffi, pycparser), packaging, resolvelib.
# nvidia-ml-py gives the kit the NVML path of gpu_info (pure Python, talks to libnvidia-ml of the driver).
"$pip" download --python-version "$py_version" --only-binary=:all: --platform "$platform" \
  --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_34_x86_64 \
  -d "$dest" "ansible-core==2.19.*" "nvidia-ml-py"
ls -1 "$dest"
