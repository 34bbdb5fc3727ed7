#!/bin/sh
# Build the benchmark image of bench/image_unpack.py: Debian bookworm minbase as one
# gzip layer (~90 MB, ~6800 entries) in an OCI layout, tag "bookworm".
#   sh bench/make_debian_image.sh DIR [MIRROR]
# DIR/bookworm-root is the debootstrap tree, DIR/bookworm-oci the layout.
# Needs root, debootstrap and umoci.
set -eu
dir=${1:?usage: make_debian_image.sh DIR [MIRROR]}
mirror=${2:-http://deb.debian.org/debian}
mkdir -p "$dir"
root=$dir/bookworm-root
layout=$dir/bookworm-oci
if [ ! -x "$root/bin/sh" ]; then
    rm -rf "$root"
    debootstrap --variant=minbase bookworm "$root" "$mirror"
fi
rm -rf "$layout" "$dir/bookworm-bundle"
umoci init --layout "$layout"
umoci new --image "$layout:bookworm"
# unpack the empty image, put the root in it, repack: one layer holding the whole tree
umoci unpack --image "$layout:bookworm" "$dir/bookworm-bundle"
rmdir "$dir/bookworm-bundle/rootfs"
cp -a "$root" "$dir/bookworm-bundle/rootfs"
umoci repack --image "$layout:bookworm" "$dir/bookworm-bundle"
umoci config --image "$layout:bookworm" --config.cmd /bin/bash \
    --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
umoci gc --layout "$layout"
chmod -R a+rX "$layout"  # readable by unprivileged users (rootless unpack)
rm -rf "$dir/bookworm-bundle"
ls -l "$layout/blobs/sha256"
