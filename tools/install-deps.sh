#!/usr/bin/env bash
# Install what the lab and the tests need on a fresh Debian/Ubuntu machine (as root), and make sure
# a Docker engine answers. Every step skips what is already there, so it is cheap to re-run.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
pkgs=(docker.io debootstrap rsync openssh-client iproute2 iptables docker-registry apache2-utils make git python3-venv curl ca-certificates chromium)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# Every sim host runs systemd, which takes several inotify instances; the kernel's default of 128 per user stops new
# hosts from booting ("Too many open files") once a dozen run at once (the lab suites run side by side).
f=/proc/sys/fs/inotify/max_user_instances
if [ -w "$f" ] && [ "$(cat "$f")" -lt 1024 ]; then
  echo 1024 > "$f"
fi

# No Docker engine runs at boot on our machines: start one (the lab needs it).
if ! docker info >/dev/null 2>&1; then
  echo "starting dockerd (log: /var/log/sparkfleet-dockerd.log)"
  (setsid dockerd >/var/log/sparkfleet-dockerd.log 2>&1 &)
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { echo "dockerd did not start; see /var/log/sparkfleet-dockerd.log" >&2; exit 1; }
fi
