#!/bin/sh
# Run in the guest's root file system after its packages are configured (setup-init.sh): the
# test's unit on, the serial login off (it would take the console and 7 s), multi-user only.
set -e
systemctl enable xpu-guest.service
systemctl mask serial-getty@ttyS0.service getty@tty1.service
systemctl set-default multi-user.target
echo xpu-guest >/etc/hostname
# the setup's shortcuts (run.sh) end here: the packages under test install in full
rm /etc/dpkg/dpkg.cfg.d/xpu-guest-setup
