#!/bin/sh
# Install pyrunc (as root) and put `pyrunc` on PATH.
#
# The package goes to its own directory (not site-packages) and `pyrunc` is a
# launcher that runs Python isolated (-I: no PYTHONPATH, no user site; -S: no
# site) with that directory on sys.path. Start-up is the product: a runtime
# is started several times per container, and `site` with the .pth files of
# a busy site-packages, or pip's console-script wrapper (it imports re), cost
# more than pyrunc's own work. For the same reason the launcher prefers the
# distribution's Python (built with PGO/LTO, a few ms faster to start) when it
# is recent enough.
#   PYRUNC_PREFIX  install location (default /opt/pyrunc)
#   PYRUNC_BINDIR  where the `pyrunc` link goes (default /usr/local/bin)
#   PYRUNC_PYTHON  interpreter for the launcher (default: fastest >= 3.11 found)
#   PYTHON         interpreter with pip used to install (default python3)
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
prefix=${PYRUNC_PREFIX:-/opt/pyrunc}
bindir=${PYRUNC_BINDIR:-/usr/local/bin}
python=${PYTHON:-python3}
# the shim's launcher gets the prefix by sed: checked before anything is made
case $prefix in
*[\|\&\\]*) echo "pyrunc: install prefix $prefix: '|', '&' and '\\' are not supported" >&2; exit 1 ;;
esac

is_ok() { "$1" -c 'import sys; sys.exit(sys.version_info[:2] < (3, 11))' 2>/dev/null; }
is_ok "$python" || { echo "pyrunc needs Python >= 3.11 (with pip) to install" >&2; exit 1; }
runtime_python=${PYRUNC_PYTHON:-}
if [ -z "$runtime_python" ]; then
    for cand in /usr/bin/python3.13 /usr/bin/python3.12 /usr/bin/python3.11 "$(command -v "$python")"; do
        if [ -x "$cand" ] && is_ok "$cand"; then runtime_python=$cand; break; fi
    done
fi
# the package is pure Python: bytecode compiled by one 3.x is valid for any 3.x
[ "$("$runtime_python" -c 'import sys; print(sys.version_info[:2])')" = \
  "$("$python" -c 'import sys; print(sys.version_info[:2])')" ] || runtime_python=$(command -v "$python")

# The launcher runs a copy of the interpreter made immutable (chattr +i). Every
# pyrunc process a container can see (the init waiting for `start`, the one
# `exec` sends in) runs this binary: a container that opens its
# /proc/<pid>/exe, or execs /proc/self/exe, holds the file, and once no
# process runs it any more could reopen it for writing and replace the host's
# Python (CVE-2019-5736, where runc's binary was the target; runc and crun run
# from a sealed memfd copy instead, which would cost Python a second start-up
# every time). An immutable file cannot be opened for writing, not even by
# root; only CAP_LINUX_IMMUTABLE, which no default container has, undoes it.
# The copy is refreshed by every install: run this again after upgrading the
# distribution's Python.
interp_dir="$prefix/libexec"
interp="$interp_dir/$(basename "$runtime_python")"
mkdir -p "$interp_dir"
cp "$runtime_python" "$interp.new"
chmod 755 "$interp.new"
if "$interp.new" -IS -c 'import sys, encodings' 2>/dev/null; then
    [ -e "$interp" ] && chattr -i "$interp" 2>/dev/null || true
    mv -f "$interp.new" "$interp"
    if ! chattr +i "$interp" 2>/dev/null; then
        echo "warning: $interp could not be made immutable (chattr +i): a container could overwrite it (CVE-2019-5736)" >&2
    fi
    runtime_python=$interp
else  # e.g. an interpreter that finds libpython next to itself: use it in place
    rm -f "$interp.new"
    echo "warning: $runtime_python does not run from a copy; the launcher uses it in place, unprotected against CVE-2019-5736" >&2
fi

lib="$prefix/lib"
rm -rf "$lib.new"
# setuptools builds in the source tree and never prunes build/lib: a module
# moved or removed since the last install would otherwise be installed still
rm -rf "$here/build"
# PYTHONDONTWRITEBYTECODE would keep pip from compiling the package: the
# compiled files are what makes every command start fast
env -u PYTHONDONTWRITEBYTECODE "$python" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    --no-warn-script-location --target "$lib.new" "$here"
# `pyrunc --version` prints it on its "commit:" line, as runc prints the
# `git describe` it was built from (runc's Makefile runs the same command)
commit=$(git -C "$here" describe --dirty --long --always 2>/dev/null || true)
echo "${commit:-unknown}" > "$lib.new/pyrunc/COMMIT"
rm -rf "$lib" && mv "$lib.new" "$lib"
mkdir -p "$prefix/bin"
cat > "$prefix/bin/pyrunc.new" <<LAUNCHER
#!$runtime_python -IS
import sys
sys.path.append("$lib")
from pyrunc import _boot
_boot.install("$lib")
_boot.early(sys.argv)
from pyrunc.cli.main import run_and_exit
run_and_exit()
LAUNCHER
chmod 755 "$prefix/bin/pyrunc.new"
mv "$prefix/bin/pyrunc.new" "$prefix/bin/pyrunc"
ln -sf "$prefix/bin/pyrunc" "$bindir/pyrunc"
# containerd's v2 shim for the runtime io.containerd.pyrunc.v1 (docs/shim.md):
# the Python shim goes next to the interpreter; containerd finds the sh
# launcher (scripts/shim-launcher.sh) on its PATH by the shim's name. The
# launcher answers the `delete` that follows every shim's end itself when the
# shim left nothing to clean up, and runs the Python shim for the rest.
shim="$interp_dir/containerd-shim-pyrunc-v1"
cat > "$shim.new" <<LAUNCHER
#!$runtime_python -IS
import sys
sys.path.append("$lib")
from pyrunc import _boot
_boot.install("$lib")
from pyrunc.shim.main import run_and_exit
run_and_exit(sys.argv)
LAUNCHER
chmod 755 "$shim.new"
mv "$shim.new" "$shim"
sed "s|@SHIM@|$shim|g" "$here/scripts/shim-launcher.sh" > "$prefix/bin/containerd-shim-pyrunc-v1.new"
chmod 755 "$prefix/bin/containerd-shim-pyrunc-v1.new"
mv "$prefix/bin/containerd-shim-pyrunc-v1.new" "$prefix/bin/containerd-shim-pyrunc-v1"
ln -sf "$prefix/bin/containerd-shim-pyrunc-v1" "$bindir/containerd-shim-pyrunc-v1"
echo "pyrunc installed: $bindir/pyrunc -> $prefix ($("$bindir/pyrunc" --version | head -1), $runtime_python)"
