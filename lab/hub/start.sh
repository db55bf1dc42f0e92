#!/bin/sh
# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
# Run the lab Hub stand-in container (image sparkfleet-lab/lab-services), port 80 inside.
# usage: lab/hub/start.sh [start|stop|status] [-- extra server.py args, e.g. --repo-size REPO=BYTES]
#   LAB_HUB_NAME        container name (default sparkfleet-lab-hub)
#   LAB_HUB_PUBLISH_PORT  host port on 127.0.0.1 (default 8090; empty: do not publish)
#   LAB_HUB_NETWORK     also attach to this docker network (lab hosts use HF_ENDPOINT=http://<name>)
#   LAB_SERVICES_IMAGE  default sparkfleet-lab/lab-services:latest
set -eu
name=${LAB_HUB_NAME:-sparkfleet-lab-hub}
port=${LAB_HUB_PUBLISH_PORT-8090}
image=${LAB_SERVICES_IMAGE:-sparkfleet-lab/lab-services:latest}
action=${1:-start}
[ $# -gt 0 ] && shift
[ "${1:-}" = "--" ] && shift

case $action in
stop) docker rm -f "$name" >/dev/null 2>&1 || true; exit 0 ;;
status) docker inspect -f '{{.State.Status}}' "$name" 2>/dev/null || echo absent; exit 0 ;;
start) ;;
*) echo "usage: $0 [start|stop|status] [-- server args]" >&2; exit 2 ;;
esac
if [ "$(docker inspect -f '{{.State.Running}}' "$name" 2>/dev/null || true)" = "true" ]; then
    echo "$name already running"
    exit 0
fi
docker rm -f "$name" >/dev/null 2>&1 || true
docker image inspect "$image" >/dev/null 2>&1 || {
    echo "start: image $image not found; build it with lab/images/lab-services/build.sh" >&2; exit 2; }
opts="--name $name --label sparkfleet.lab.role=hub -v $name-data:/var/lib/lab-hub --restart unless-stopped"
if [ -n "$port" ]; then
    if python3 -c 'import socket,sys; s=socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1])))' "$port" 2>/dev/null; then :; else
        echo "start: port 127.0.0.1:$port is already in use; set LAB_HUB_PUBLISH_PORT to a free port" >&2
        exit 3
    fi
    opts="$opts -p 127.0.0.1:$port:80"
fi
[ -n "${LAB_HUB_NETWORK:-}" ] && opts="$opts --network $LAB_HUB_NETWORK"
# shellcheck disable=SC2086
docker run -d $opts "$image" /usr/local/bin/lab-services hub "$@" >/dev/null
i=0
while [ $i -lt 120 ]; do
    if docker exec "$name" python3 -c 'import urllib.request; urllib.request.urlopen("http://127.0.0.1/_lab/health", timeout=2)' 2>/dev/null; then
        echo "$name ready${port:+ on http://127.0.0.1:$port}"
        exit 0
    fi
    i=$((i + 1))
    sleep 0.5
done
echo "start: $name did not become healthy; docker logs $name:" >&2
docker logs --tail 30 "$name" >&2 || true
exit 1
