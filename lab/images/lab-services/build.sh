#!/bin/sh
# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
# Build sparkfleet-lab/lab-services:latest: lab/images/build-image lab-services (Debian packages + overlay),
# then one layer with lab/hub and lab/registry laid out by prepare.sh. The result is tagged by the hash of
# both inputs, so an unchanged tree rebuilds nothing.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
lab=$(cd "$here/../.." && pwd)
base=$("$lab/images/build-image" --quiet lab-services | tail -n1)
src_hash=$(cd "$lab" && cat hub/server.py hub/repogen.py hub/launch.py registry/config.yml \
    registry/config-htpasswd.yml registry/run-registry.sh images/lab-services/prepare.sh | sha256sum | cut -c1-12)
final="sparkfleet-lab/lab-services:${base##*:}-$src_hash"
if ! docker image inspect "$final" >/dev/null 2>&1; then
    ctx=$(mktemp -d)
    trap 'rm -rf "$ctx"' EXIT
    sh "$here/prepare.sh" "$ctx/rootfs"
    printf 'FROM %s\nCOPY rootfs/ /\nLABEL sparkfleet.lab.sources=%s\n' "$base" "$src_hash" > "$ctx/Dockerfile"
    DOCKER_BUILDKIT=0 docker build -q -t "$final" "$ctx" >/dev/null
fi
docker tag "$final" sparkfleet-lab/lab-services:latest
echo "$final"
