#!/bin/sh
# Build a local stand-in for python:3.11-slim when no image registry is reachable: Debian bookworm
# (minbase) with python3, python3-venv and ca-certificates, and a virtual environment at /usr/local so
# that `python` and `pip` are where the official image has them. The host's extra CA certificates
# (/usr/local/share/ca-certificates/*.crt) are copied in, so pip inside a build trusts what the host trusts.
#
#   sudo deploy/podman/base-image.sh [IMAGE_NAME]      # default: localhost/modelpress-base:bookworm
#
# Skips the build when the image already exists (remove it with `podman rmi` to rebuild).
# Needs root (debootstrap), debootstrap and podman; MIRROR overrides the Debian mirror.
set -eu
NAME="${1:-localhost/modelpress-base:bookworm}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
if podman image exists "$NAME"; then
    echo "base image $NAME exists; reusing it"
    exit 0
fi
ROOTFS="$(mktemp -d)"
trap 'rm -rf "$ROOTFS"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$ROOTFS" "$MIRROR"
for crt in /usr/local/share/ca-certificates/*.crt; do
    [ -f "$crt" ] && cp "$crt" "$ROOTFS/usr/local/share/ca-certificates/"
done
chroot "$ROOTFS" update-ca-certificates >/dev/null
chroot "$ROOTFS" python3 -m venv /usr/local
# the official image's pip looks here too: keep the image small
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
tar -C "$ROOTFS" -c . | podman import --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' - "$NAME"
echo "built base image $NAME"
