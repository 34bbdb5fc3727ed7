#!/bin/sh
# Install pyrunc (as root) into its own virtualenv and put `pyrunc` on PATH.
#
# A dedicated venv keeps the interpreter's start-up free of whatever .pth
# files the system site-packages carries (they can cost 20 ms per command,
# and a runtime is started several times per container).
#   PYRUNC_PREFIX  venv location (default /opt/pyrunc)
#   PYRUNC_BINDIR  where the `pyrunc` link goes (default /usr/local/bin)
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
prefix=${PYRUNC_PREFIX:-/opt/pyrunc}
bindir=${PYRUNC_BINDIR:-/usr/local/bin}
python=${PYTHON:-python3}

"$python" -c 'import sys; assert sys.version_info >= (3, 11), "pyrunc needs Python >= 3.11"'
if [ ! -x "$prefix/bin/python3" ]; then
    "$python" -m venv "$prefix"
fi
# PYTHONDONTWRITEBYTECODE would keep pip from compiling the package: the
# compiled files are what makes every command start fast
env -u PYTHONDONTWRITEBYTECODE "$prefix/bin/pip" install --quiet --disable-pip-version-check \
    --force-reinstall --no-deps "$here"
# pip's console-script wrapper imports `re` (5 ms) and runs `site`: replace
# it with a launcher that starts isolated (-I: no PYTHONPATH, no user site;
# -S: no site) and finds the package by its own path
site=$("$prefix/bin/python3" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
cat > "$prefix/bin/pyrunc" <<LAUNCHER
#!$prefix/bin/python3 -IS
import sys
sys.path.append("$site")
from pyrunc.cli.main import run_and_exit
run_and_exit()
LAUNCHER
chmod 755 "$prefix/bin/pyrunc"
ln -sf "$prefix/bin/pyrunc" "$bindir/pyrunc"
echo "pyrunc installed: $(command -v pyrunc) ($("$bindir/pyrunc" --version | head -1))"
