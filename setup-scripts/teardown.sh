#!/usr/bin/env bash
# Removes the namespace made by setup.sh, with its TUN devices and the host's veth link
# (and the routes through it), and the device locks the stacks took in it
# (/run/usernet/NS.DEV.lock). Idempotent.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
parse_args "$@"
require_root "$@"

host_link="$(host_link_name)"
if ip link show dev "$host_link" >/dev/null 2>&1; then
    ip link del dev "$host_link"
fi
if ns_exists; then
    ip netns del "$TCPST_NS"
    echo "namespace $TCPST_NS removed"
else
    echo "namespace $TCPST_NS does not exist; nothing to do"
fi
# The stacks' device locks (usernet's tun_setup): they name devices that are gone now.
rm -f /run/usernet/"$TCPST_NS".*.lock
