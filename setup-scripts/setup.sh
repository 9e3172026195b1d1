#!/usr/bin/env bash
# Creates (or updates) a network namespace holding a TUN device for the user-space TCP
# stack. The kernel side owns TCPST_KERNEL_ADDR on the device; packets to
# TCPST_STACK_ADDR leave through the device to whoever holds its fd. Idempotent: run it
# again to change the MTU or to repair a half-made setup. See README.md.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
parse_args "$@"
require_root "$@"

[[ "$TCPST_MTU" =~ ^[0-9]+$ ]] && (( TCPST_MTU >= 68 && TCPST_MTU <= 65535 )) ||
    die "MTU must be an integer in 68..65535, got '$TCPST_MTU'"
[[ "$TCPST_KERNEL_ADDR" == */* ]] || die "kernel address needs a prefix length, e.g. 10.77.0.1/24"
[[ -c /dev/net/tun ]] || die "/dev/net/tun is missing (modprobe tun)"

ns_exists || ip netns add "$TCPST_NS"
nsip() { ip -n "$TCPST_NS" "$@"; }

mode=(mode tun)
want_mq=0
if [[ "$TCPST_MULTI_QUEUE" == 1 ]]; then
    mode+=(multi_queue)
    want_mq=1
fi

# A device of the wrong kind (say, single-queue when multi-queue is wanted) is recreated.
if nsip link show dev "$TCPST_DEV" >/dev/null 2>&1; then
    details="$(nsip -d link show dev "$TCPST_DEV")"
    have_mq=0
    [[ "$details" == *multi_queue* ]] && have_mq=1
    if [[ "$details" != *"tun type tun"* || "$have_mq" != "$want_mq" ]]; then
        nsip link del dev "$TCPST_DEV"
    fi
fi
nsip link show dev "$TCPST_DEV" >/dev/null 2>&1 || nsip tuntap add dev "$TCPST_DEV" "${mode[@]}"

nsip link set dev lo up
# The stack speaks IPv4 only: keep the kernel's IPv6 chatter (router solicitations,
# MLD reports) off the device.
if [[ -e /proc/sys/net/ipv6 ]]; then
    ip netns exec "$TCPST_NS" bash -c 'echo 1 > "/proc/sys/net/ipv6/conf/$1/disable_ipv6"' _ "$TCPST_DEV"
fi
nsip link set dev "$TCPST_DEV" mtu "$TCPST_MTU"
# Exactly one address: a rerun with a different --kernel-addr replaces the old one.
nsip addr flush dev "$TCPST_DEV"
nsip addr add "$TCPST_KERNEL_ADDR" dev "$TCPST_DEV"
nsip link set dev "$TCPST_DEV" up
# The stack's address is reachable through the device even if it lies outside the prefix.
nsip route replace "$TCPST_STACK_ADDR/32" dev "$TCPST_DEV"

cat <<DONE
namespace $TCPST_NS: TUN device $TCPST_DEV (mtu $TCPST_MTU$([[ $want_mq == 1 ]] && echo ", multi-queue"))
  kernel side: $TCPST_KERNEL_ADDR    stack side: $TCPST_STACK_ADDR
  run the stack's process inside it:  ip netns exec $TCPST_NS <command>
DONE
