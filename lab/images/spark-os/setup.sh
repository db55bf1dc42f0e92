#!/bin/sh
# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
# Runs with chroot inside the spark-os rootfs after overlay/ was copied (see lab/README.md).
set -eu

# The login user of a DGX Spark: passwordless sudo, key-only SSH (the lab CLI installs the key).
if ! id spark >/dev/null 2>&1; then
    useradd --create-home --shell /bin/bash --groups sudo spark
fi
usermod -p '*' spark
printf 'spark ALL=(ALL) NOPASSWD:ALL\n' > /etc/sudoers.d/90-sparkfleet-lab-spark
chmod 0440 /etc/sudoers.d/90-sparkfleet-lab-spark
install -d -m 0700 -o spark -g spark /home/spark/.ssh

# Units that make no sense in a container (no udev, no consoles, no kernel modules).
for unit in systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket \
    systemd-udev-trigger.service systemd-udev-settle.service getty.target getty@tty1.service \
    console-getty.service serial-getty@.service systemd-remount-fs.service systemd-modules-load.service \
    sys-kernel-config.mount sys-kernel-debug.mount sys-kernel-tracing.mount sys-fs-fuse-connections.mount \
    dev-hugepages.mount dev-mqueue.mount proc-sys-fs-binfmt_misc.automount systemd-binfmt.service \
    systemd-journald-audit.socket systemd-firstboot.service e2scrub_reap.service e2scrub_all.timer \
    apt-daily.timer apt-daily-upgrade.timer fstrim.timer systemd-sysctl.service \
    systemd-hwdb-update.service systemd-random-seed.service; do
    ln -sf /dev/null "/etc/systemd/system/$unit"
done
systemctl enable ssh.service docker.service sparkfleet-sim-hostkeys.service sparkfleet-sim-firstboot.service

# Every host gets its own SSH host keys and machine id at first boot.
rm -f /etc/ssh/ssh_host_*
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id

# The rootfs of the tiny sparkfleet-lab/busybox image (static busybox, applet links).
bb=$(mktemp -d)
mkdir -p "$bb/bin" "$bb/sbin" "$bb/usr/bin" "$bb/usr/sbin" "$bb/tmp" "$bb/etc" "$bb/root" "$bb/proc" "$bb/sys" "$bb/dev"
cp /bin/busybox "$bb/bin/busybox"
for applet in $(/bin/busybox --list); do
    [ -e "$bb/bin/$applet" ] || ln -s busybox "$bb/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$bb/etc/passwd"
printf 'root:x:0:\n' > "$bb/etc/group"
chmod 1777 "$bb/tmp"
mkdir -p /usr/share/sparkfleet-sim
tar --numeric-owner -C "$bb" -cf /usr/share/sparkfleet-sim/busybox-rootfs.tar .
rm -rf "$bb"

# Smaller image: no package caches or docs.
apt-get clean
rm -rf /usr/share/doc/* /usr/share/man/* /var/log/apt/* /var/log/dpkg.log
