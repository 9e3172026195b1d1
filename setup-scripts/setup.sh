#!/usr/bin/env bash
# Creates (or updates) a network namespace holding the TUN devices of the user-space TCP
# stacks: one for the web server's stack (TCPST_DEV) and one for the load generator's
# (TCPST_CLIENT_DEV), each multi-queue (one queue per core), with the kernel forwarding
# between them, and a veth link so the host reaches the stacks too. Idempotent: run it
# again to change a setting or to repair a half-made setup. See README.md.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
parse_args "$@"
require_root "$@"

[[ "$TCPST_MTU" =~ ^[0-9]+$ ]] && (( TCPST_MTU >= 68 && TCPST_MTU <= 65535 )) ||
    die "MTU must be an integer in 68..65535, got '$TCPST_MTU'"
for a in "$TCPST_KERNEL_ADDR" "$TCPST_CLIENT_KERNEL_ADDR"; do
    [[ "$a" == */* ]] || die "kernel address needs a prefix length, e.g. 10.77.0.1/24 (got '$a')"
done
[[ -c /dev/net/tun ]] || die "/dev/net/tun is missing (modprobe tun)"

ns_exists || ip netns add "$TCPST_NS"
nsip() { ip -n "$TCPST_NS" "$@"; }
nsexec() { ip netns exec "$TCPST_NS" "$@"; }

mode=(mode tun)
want_mq=0
if [[ "$TCPST_MULTI_QUEUE" == 1 ]]; then
    mode+=(multi_queue)
    want_mq=1
fi

nsip link set dev lo up
# The kernel forwards between the two stacks' devices and the host link.
nsexec sysctl -qw net.ipv4.ip_forward=1

# make_tun DEV KERNEL_ADDR/PREFIX STACK_ADDR
make_tun() {
    local dev="$1" kaddr="$2" saddr="$3"
    # A device of the wrong kind (say, single-queue when multi-queue is wanted) is
    # recreated.
    if nsip link show dev "$dev" >/dev/null 2>&1; then
        local details have_mq=0
        details="$(nsip -d link show dev "$dev")"
        [[ "$details" == *multi_queue* ]] && have_mq=1
        if [[ "$details" != *"tun type tun"* || "$have_mq" != "$want_mq" ]]; then
            nsip link del dev "$dev"
        fi
    fi
    nsip link show dev "$dev" >/dev/null 2>&1 || nsip tuntap add dev "$dev" "${mode[@]}"
    # The stacks speak IPv4 only: keep the kernel's IPv6 chatter (router
    # solicitations, MLD reports) off the device.
    if [[ -e /proc/sys/net/ipv6 ]]; then
        nsexec bash -c 'echo 1 > "/proc/sys/net/ipv6/conf/$1/disable_ipv6"' _ "$dev"
    fi
    nsip link set dev "$dev" mtu "$TCPST_MTU" txqueuelen "$TCPST_TXQUEUELEN"
    # Exactly one address: a rerun with a different address replaces the old one.
    nsip addr flush dev "$dev"
    nsip addr add "$kaddr" dev "$dev"
    nsip link set dev "$dev" up
    # The stack's address is reachable through the device even outside the prefix.
    nsip route replace "$saddr/32" dev "$dev"
}

# network_of A.B.C.D/P: the network of that prefix, as A.B.C.D/P with the host bits 0.
network_of() {
    local ip="${1%/*}" p="${1#*/}" a b c d
    IFS=. read -r a b c d <<<"$ip"
    local n=$(( (a << 24) | (b << 16) | (c << 8) | d ))
    local mask=$(( p == 0 ? 0 : (0xffffffff << (32 - p)) & 0xffffffff ))
    n=$(( n & mask ))
    echo "$(( (n >> 24) & 255 )).$(( (n >> 16) & 255 )).$(( (n >> 8) & 255 )).$(( n & 255 ))/$p"
}

make_tun "$TCPST_DEV" "$TCPST_KERNEL_ADDR" "$TCPST_STACK_ADDR"
if [[ "$TCPST_CLIENT" == 1 ]]; then
    make_tun "$TCPST_CLIENT_DEV" "$TCPST_CLIENT_KERNEL_ADDR" "$TCPST_CLIENT_STACK_ADDR"
fi

host_link=""
if [[ "$TCPST_HOST_LINK" == 1 ]]; then
    host_link="$(host_link_name)"
    if ! ip link show dev "$host_link" >/dev/null 2>&1; then
        ip link add "$host_link" type veth peer name veth0 netns "$TCPST_NS"
    fi
    ip addr flush dev "$host_link"
    ip addr add "$TCPST_HOST_ADDR/30" dev "$host_link"
    ip link set dev "$host_link" up
    nsip addr flush dev veth0
    nsip addr add "$TCPST_NS_LINK_ADDR/30" dev veth0
    nsip link set dev veth0 up
    # The host reaches both stacks (and the kernel side) through the namespace.
    for a in "$TCPST_KERNEL_ADDR" "$TCPST_CLIENT_KERNEL_ADDR"; do
        ip route replace "$(network_of "$a")" via "$TCPST_NS_LINK_ADDR" dev "$host_link"
    done
    ip route replace "$TCPST_STACK_ADDR/32" via "$TCPST_NS_LINK_ADDR" dev "$host_link"
    ip route replace "$TCPST_CLIENT_STACK_ADDR/32" via "$TCPST_NS_LINK_ADDR" dev "$host_link"
fi

queues="single-queue"
[[ $want_mq == 1 ]] && queues="multi-queue: one queue per core"
cat <<DONE
namespace $TCPST_NS ($queues, mtu $TCPST_MTU):
  web server stack:     $TCPST_DEV   kernel side $TCPST_KERNEL_ADDR, stack $TCPST_STACK_ADDR
DONE
if [[ "$TCPST_CLIENT" == 1 ]]; then
    echo "  load generator stack: $TCPST_CLIENT_DEV   kernel side $TCPST_CLIENT_KERNEL_ADDR, stack $TCPST_CLIENT_STACK_ADDR"
fi
if [[ -n "$host_link" ]]; then
    echo "  from the host: $host_link $TCPST_HOST_ADDR -> the namespace (try: curl http://$TCPST_STACK_ADDR:8080/ once the server runs)"
fi
echo "  kernel-side programs run inside it: ip netns exec $TCPST_NS <command>"
