#!/bin/sh
# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
# Runs in the image rootfs (chroot) after overlay/ is copied: finish the TensorRT-LLM stand-in.
set -eu
# The guide runs `python -c ...`: Debian only has python3.
ln -sf /usr/bin/python3 /usr/local/bin/python
chmod 0755 /usr/local/bin/trtllm-serve /usr/local/bin/trtllm-llmapi-launch
# sshd (multi-node form) needs its privilege separation dir; the entrypoint of the guide configures the rest.
mkdir -p /run/sshd /root/.cache/huggingface
# Byte-compile the stand-in and fail the build now if it cannot start.
python3 -m compileall -q /opt/trtllm-standin /usr/local/lib/python3.11/dist-packages/tensorrt_llm
python3 -c 'import tensorrt_llm, yaml; assert tensorrt_llm.__standin__' >/dev/null
trtllm-serve --help | grep -q 'lab stand-in'
command -v mpirun >/dev/null
