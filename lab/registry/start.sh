#!/bin/sh
# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
# Run the lab registry container (image sparkfleet-lab/lab-services) published on 127.0.0.1.
# usage: lab/registry/start.sh [start|stop|status]
#   LAB_REGISTRY_NAME    container name (default sparkfleet-lab-registry)
#   LAB_REGISTRY_PORT    host port on 127.0.0.1 (default 5000)
#   LAB_REGISTRY_NETWORK also attach to this docker network (lab hosts reach it as <name>:5000)
#   LAB_REGISTRY_HTPASSWD_USER / LAB_REGISTRY_HTPASSWD_PASSWORD  enable basic auth
#   LAB_SERVICES_IMAGE   default sparkfleet-lab/lab-services:latest
set -eu
name=${LAB_REGISTRY_NAME:-sparkfleet-lab-registry}
port=${LAB_REGISTRY_PORT:-5000}
image=${LAB_SERVICES_IMAGE:-sparkfleet-lab/lab-services:latest}
action=${1:-start}

case $action in
stop)
    docker rm -f "$name" >/dev/null 2>&1 || true
    exit 0 ;;
status)
    docker inspect -f '{{.State.Status}}' "$name" 2>/dev/null || echo absent
    exit 0 ;;
start) ;;
*) echo "usage: $0 [start|stop|status]" >&2; exit 2 ;;
esac

if [ "$(docker inspect -f '{{.State.Running}}' "$name" 2>/dev/null || true)" = "true" ]; then
    echo "$name already running on 127.0.0.1:$(docker port "$name" 5000/tcp | head -n1 | sed 's/.*://')"
    exit 0
fi
docker rm -f "$name" >/dev/null 2>&1 || true
if python3 - "$port" <<'PY'
import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(0)
sys.exit(1)
PY
then
    echo "start: port 127.0.0.1:$port is already in use; set LAB_REGISTRY_PORT to a free port" >&2
    exit 3
fi
if ! docker image inspect "$image" >/dev/null 2>&1; then
    echo "start: image $image not found; build it with lab/images/lab-services/build.sh" >&2
    exit 2
fi
set -- --name "$name" --label sparkfleet.lab.role=registry -p "127.0.0.1:$port:5000" \
    -v "$name-data:/var/lib/docker-registry" --restart unless-stopped
if [ -n "${LAB_REGISTRY_HTPASSWD_USER:-}" ]; then
    set -- "$@" -e LAB_REGISTRY_HTPASSWD_USER -e LAB_REGISTRY_HTPASSWD_PASSWORD
fi
if [ -n "${LAB_REGISTRY_NETWORK:-}" ]; then
    set -- "$@" --network "$LAB_REGISTRY_NETWORK"
fi
docker run -d "$@" "$image" /usr/local/bin/lab-services registry >/dev/null
i=0
while [ $i -lt 60 ]; do
    code=$(curl -s -o /dev/null -w '%{http_code}' -m 2 "http://127.0.0.1:$port/v2/" || true)
    case $code in 200|401) echo "$name ready on 127.0.0.1:$port"; exit 0 ;; esac
    i=$((i + 1))
    sleep 0.5
done
echo "start: $name did not answer on 127.0.0.1:$port/v2/; docker logs $name:" >&2
docker logs --tail 30 "$name" >&2 || true
exit 1
