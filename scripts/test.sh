#!/bin/sh
# Install the test dependencies and pyrunc, then run the whole suite (as root).
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
need=""
for pkg in runc crun busybox-static podman netavark iptables uidmap libseccomp2 iproute2 containerd docker.io criu umoci skopeo docker-registry; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need="$need $pkg"
done
if [ -n "$need" ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null
fi
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore pytest hypothesis urllib3 zstandard mypy
sh "$here/scripts/install.sh"
cd "$here"
# static types first (settings: [tool.mypy] in pyproject.toml); an error stops here
python3 -m mypy
exec python3 -m pytest -c tests/pytest.ini tests "$@"
