#!/bin/sh
# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
# Start Debian's docker-registry with the lab configuration (in the lab-services image, or on a host).
#   LAB_REGISTRY_HTPASSWD_USER + LAB_REGISTRY_HTPASSWD_PASSWORD  enable htpasswd auth (config-htpasswd.yml)
#   LAB_REGISTRY_HTPASSWD_FILE   where to write the htpasswd file (default /etc/docker/registry/htpasswd)
#   LAB_REGISTRY_ADDR            listen address (default :5000)
#   LAB_REGISTRY_STORAGE         storage directory (default /var/lib/docker-registry)
#   LAB_REGISTRY_CONFIG_DIR      where config.yml/config-htpasswd.yml live (default: next to this script)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
conf_dir=${LAB_REGISTRY_CONFIG_DIR:-$here}
registry=${LAB_REGISTRY_BIN:-docker-registry}
command -v "$registry" >/dev/null 2>&1 || { echo "run-registry: $registry not found (apt-get install docker-registry)" >&2; exit 2; }
export REGISTRY_HTTP_ADDR="${LAB_REGISTRY_ADDR:-:5000}"
export REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY="${LAB_REGISTRY_STORAGE:-/var/lib/docker-registry}"
mkdir -p "$REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY"
config=$conf_dir/config.yml
if [ -n "${LAB_REGISTRY_HTPASSWD_USER:-}" ]; then
    if [ -z "${LAB_REGISTRY_HTPASSWD_PASSWORD:-}" ]; then
        echo "run-registry: LAB_REGISTRY_HTPASSWD_USER is set but LAB_REGISTRY_HTPASSWD_PASSWORD is empty" >&2
        exit 2
    fi
    command -v htpasswd >/dev/null 2>&1 || { echo "run-registry: htpasswd not found (apt-get install apache2-utils)" >&2; exit 2; }
    htfile=${LAB_REGISTRY_HTPASSWD_FILE:-/etc/docker/registry/htpasswd}
    mkdir -p "$(dirname "$htfile")"
    htpasswd -Bbn "$LAB_REGISTRY_HTPASSWD_USER" "$LAB_REGISTRY_HTPASSWD_PASSWORD" > "$htfile"
    chmod 0600 "$htfile"
    export REGISTRY_AUTH_HTPASSWD_PATH="$htfile"
    config=$conf_dir/config-htpasswd.yml
fi
exec "$registry" serve "$config"
