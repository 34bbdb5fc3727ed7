#!/bin/sh
# Build a busybox bundle from Debian's busybox-static and run it with pyrunc,
# showing what the container sees: PID 1, its own hostname, its namespaces.
set -eu
if ! command -v busybox >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null
fi
bundle=${1:-/tmp/pyrunc-demo}
rm -rf "$bundle" && mkdir -p "$bundle/rootfs/bin" "$bundle/rootfs/etc"
cp "$(command -v busybox)" "$bundle/rootfs/bin/busybox"
for applet in $(busybox --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$bundle/rootfs/bin/$applet"
done
echo 'root:x:0:0:root:/root:/bin/sh' > "$bundle/rootfs/etc/passwd"
echo 'root:x:0:' > "$bundle/rootfs/etc/group"
cd "$bundle"
pyrunc spec
# no terminal (the demo may run without one), a hostname, and a script that
# shows the isolation
sed -i -e 's/"terminal": true/"terminal": false/' \
       -e 's/"hostname": "runc"/"hostname": "pyrunc-demo"/' config.json
python3 - <<'PY'
import json
c = json.load(open("config.json"))
c["process"]["args"] = ["sh", "-c",
    "echo \"I am PID $$ in $(hostname)\"; echo; ps -o pid,user,comm; echo;"
    " echo 'my namespaces:';"
    " for n in pid net mnt uts ipc; do echo \"  $n: $(readlink /proc/self/ns/$n)\"; done"]
json.dump(c, open("config.json", "w"), indent="\t")
PY
echo "--- pyrunc run demo (bundle $bundle) ---"
pyrunc run demo
echo "--- the host shell's namespaces, for comparison ---"
for n in pid net mnt uts ipc; do echo "  $n: $(readlink /proc/$$/ns/$n)"; done
