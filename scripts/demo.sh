#!/usr/bin/env bash
# Set up, then show the reconciler at work on inventory-example/:
#  1. `reconciler sandbox`: a whole site on this machine (network namespaces,
#     dhcpd with OMAPI, named with dynamic zones and TSIG, tftpd, `reconciler
#     serve` and `reconciler watch`) on a git copy of inventory-example/; it
#     commits a new host and proves, with timings, that a DHCP client with that
#     MAC gets its address, named answers its name, and its boot files are
#     served. Everything is removed at the end, also on Ctrl-C. Needs root.
#  2. The same inventory with the file targets, offline: validate, plan, apply
#     into ./out/demo, and plan again to show a second pass has nothing to do.
# Exits non-zero if any check fails.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
reconciler=.venv/bin/reconciler

echo "== 1. the sandbox: a commit applied live"
$reconciler sandbox --inventory inventory-example

echo
echo "== 2. the file targets, offline"
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
