#!/bin/sh
# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
# Copy the lab Hub stand-in and the registry files into a lab-services rootfs.
# usage: prepare.sh ROOTFS    (the sources stay in one place: lab/hub and lab/registry)
# Hook for lab/images/build-image: run before setup.sh with the rootfs path as $1; build.sh next to this file
# does the same as an extra image layer while the builder has no such hook.
set -eu
root=${1:?usage: prepare.sh ROOTFS}
lab=$(cd "$(dirname "$0")/../.." && pwd)
install -d "$root/opt/lab-hub" "$root/opt/lab-registry" "$root/etc/docker/registry" "$root/var/lib/lab-hub" \
    "$root/var/lib/docker-registry"
for f in server.py repogen.py launch.py; do
    install -m 0644 "$lab/hub/$f" "$root/opt/lab-hub/$f"
done
install -m 0644 "$lab/registry/config.yml" "$lab/registry/config-htpasswd.yml" "$root/opt/lab-registry/"
install -m 0755 "$lab/registry/run-registry.sh" "$root/opt/lab-registry/run-registry.sh"
