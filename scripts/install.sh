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

lib="$prefix/lib"
rm -rf "$lib.new"
# PYTHONDONTWRITEBYTECODE would keep pip from compiling the package: the
# compiled files are what makes every command start fast
env -u PYTHONDONTWRITEBYTECODE "$python" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    --no-deps --no-warn-script-location --target "$lib.new" "$here"
rm -rf "$lib" && mv "$lib.new" "$lib"
mkdir -p "$prefix/bin"
cat > "$prefix/bin/pyrunc.new" <<LAUNCHER
#!$runtime_python -IS
import sys
sys.path.append("$lib")
from pyrunc.cli.main import run_and_exit
run_and_exit()
LAUNCHER
chmod 755 "$prefix/bin/pyrunc.new"
mv "$prefix/bin/pyrunc.new" "$prefix/bin/pyrunc"
ln -sf "$prefix/bin/pyrunc" "$bindir/pyrunc"
echo "pyrunc installed: $bindir/pyrunc -> $prefix ($("$bindir/pyrunc" --version | head -1), $runtime_python)"
