# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""The multi-node entrypoint the collection ships (roles/trtllm_multinode/files/trtllm-mn-entrypoint.sh), run in
the TensorRT-LLM stand-in image on the outer Docker engine (mark: docker).

The guide's entrypoint installs openssh-server from the internet at every start; ours installs nothing, so an image
without sshd must stop at once with a message that says so (exit 78, EX_CONFIG), instead of mpirun failing later with
an SSH error on the other node."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from test_standin_image import docker, image  # noqa: F401  pylint: disable=unused-import

pytestmark = pytest.mark.docker

ENTRYPOINT = Path(__file__).resolve().parents[2] / "roles" / "trtllm_multinode" / "files" / "trtllm-mn-entrypoint.sh"


@pytest.mark.parametrize("role", ["primary", "worker"])
def test_an_image_without_sshd_stops_with_a_clear_message(image, role):  # noqa: F811
    name = "sparkfleet-test-mn-entry-%s" % uuid.uuid4().hex[:8]
    try:
        # The stand-in carries sshd (as the real image must); it is moved out of reach to stand for an image without.
        proc = docker("run", "--name", name, "--network", "none", "-e", "SPARKFLEET_MN_ROLE=" + role,
                      "-v", "%s:/opt/sparkfleet-mn-entrypoint.sh:ro" % ENTRYPOINT, "--entrypoint", "sh", image,
                      "-c", "mv /usr/sbin/sshd /root/sshd.moved && exec sh /opt/sparkfleet-mn-entrypoint.sh "
                            "mpirun -np 2 true", timeout=120, check=False)
    finally:
        docker("rm", "-f", name, check=False)
    assert proc.returncode == 78, (proc.returncode, proc.stdout, proc.stderr)
    assert "this image has no sshd (openssh-server)" in proc.stderr, proc.stderr
    assert "apt" not in proc.stdout + proc.stderr  # nothing is installed at start, unlike the guide's entrypoint


def test_with_sshd_the_entrypoint_checks_its_config_before_serving(image):  # noqa: F811
    """With sshd present, a missing group folder (no sshd_config mounted) fails sshd's config test, not later."""
    name = "sparkfleet-test-mn-entry-%s" % uuid.uuid4().hex[:8]
    try:
        proc = docker("run", "--name", name, "--network", "none", "-e", "SPARKFLEET_MN_ROLE=worker",
                      "-e", "SPARKFLEET_MN_DIR=/nonexistent",
                      "-v", "%s:/opt/sparkfleet-mn-entrypoint.sh:ro" % ENTRYPOINT, "--entrypoint", "sh", image,
                      "/opt/sparkfleet-mn-entrypoint.sh", timeout=120, check=False)
    finally:
        docker("rm", "-f", name, check=False)
    assert proc.returncode != 0 and proc.returncode != 78, (proc.returncode, proc.stderr)
    assert "/nonexistent/ssh/sshd_config" in proc.stderr, proc.stderr
