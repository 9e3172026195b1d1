#!/usr/bin/env bash
# Removes the namespace made by setup.sh, and the TUN device with it. Idempotent.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
parse_args "$@"
require_root "$@"

if ns_exists; then
    ip netns del "$TCPST_NS"
    echo "namespace $TCPST_NS removed"
else
    echo "namespace $TCPST_NS does not exist; nothing to do"
fi
