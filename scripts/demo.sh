#!/usr/bin/env bash
# Set up, then run the main job on inventory-example/: validate, plan, apply into
# ./out with the file targets (dhcpd include, BIND zone files, boot files, node
# images), and plan again to show that a second pass has nothing to do.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
reconciler=.venv/bin/reconciler
workdir=out/demo
mkdir -p "$workdir"
cat > "$workdir/reconciler.toml" <<TOML
state_dir = "state"
[source]
path = "../../inventory-example"
[boot]
http_url = "http://10.23.45.2:8080"
tftp_server = "10.23.45.2"
[targets.dhcp]
type = "dhcp-file"
path = "dhcp/reconciler-hosts.conf"
[targets.dns]
type = "dns-zonefile"
directory = "zones"
mname = "ns1.cluster.example."
rname = "hostmaster.cluster.example."
nameservers = ["ns1.cluster.example."]
[targets.boot]
type = "bootfiles"
directory = "tftp"
[targets.images]
type = "node-images"
directory = "http"
TOML
echo "== validate"
$reconciler validate inventory-example
echo "== plan (exit 1: there are changes)"
$reconciler plan -c "$workdir/reconciler.toml" || [ $? -eq 1 ]
echo "== apply"
$reconciler apply -c "$workdir/reconciler.toml" --format json >"$workdir/apply.json"
echo "applied; output in $workdir (dhcp/, zones/, tftp/, http/)"
echo "== plan again (exit 0: nothing to do)"
$reconciler plan -c "$workdir/reconciler.toml"
