#!/bin/sh
# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
# Entrypoint of the sparkfleet.trtllm multi-node containers (mounted read-only from the collection; replaces the
# guide's `curl .../trtllm-mn-entrypoint.sh | sh`). Nothing is installed or downloaded: the image must carry sshd.
#   worker:  run sshd in the foreground (mpirun on the primary starts this node's rank through it).
#   primary: start sshd, wait until every peer's sshd answers with its pinned host key, then exec "$@" (mpirun ...);
#            when mpirun ends (a rank died) the container exits and its restart policy starts it again.
# Environment: SPARKFLEET_MN_DIR (the mounted group folder), SPARKFLEET_MN_ROLE (primary|worker),
#              SPARKFLEET_MN_PEER_WAIT_SECONDS (0 = wait forever).
set -eu

dir=${SPARKFLEET_MN_DIR:-/opt/sparkfleet-mn}
role=${SPARKFLEET_MN_ROLE:-worker}
say() { echo "[sparkfleet-mn] $*"; }

sshd=$(command -v sshd || echo /usr/sbin/sshd)
if [ ! -x "$sshd" ]; then
    say "this image has no sshd (openssh-server): mpirun cannot start the other ranks; use an image that carries it" >&2
    exit 78
fi
mkdir -p /run/sshd
"$sshd" -t -f "$dir/ssh/sshd_config"

if [ "$role" != primary ]; then
    say "worker: sshd on $(sed -n 's/^ListenAddress //p' "$dir/ssh/sshd_config"):$(sed -n 's/^Port //p' "$dir/ssh/sshd_config")"
    exec "$sshd" -D -e -f "$dir/ssh/sshd_config"
fi

"$sshd" -e -f "$dir/ssh/sshd_config"
peers=$(grep -v '^[[:space:]]*#' "$dir/hostfile" | awk 'NF { print $1 }' | tail -n +2)
wait_s=${SPARKFLEET_MN_PEER_WAIT_SECONDS:-0}
start=$(date +%s)
for peer in $peers; do
    tries=0
    until ssh -F "$dir/ssh/ssh_config" "$peer" true 2>/dev/null; do
        tries=$((tries + 1))
        [ $((tries % 10)) -eq 1 ] && say "primary: waiting for the sshd of $peer"
        if [ "$wait_s" -gt 0 ] && [ $(($(date +%s) - start)) -ge "$wait_s" ]; then
            say "primary: $peer did not answer within ${wait_s}s" >&2
            exit 1
        fi
        sleep 2
    done
    say "primary: $peer answers"
done
say "primary: launching $*"
exec "$@"
