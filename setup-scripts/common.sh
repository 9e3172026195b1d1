# Shared by setup.sh and teardown.sh: defaults, option parsing, checks.
# Every setting can come from the environment or from a flag; flags win.

TCPST_NS="${TCPST_NS:-tcpst}"
TCPST_DEV="${TCPST_DEV:-tun0}"
TCPST_KERNEL_ADDR="${TCPST_KERNEL_ADDR:-10.77.0.1/24}"
TCPST_STACK_ADDR="${TCPST_STACK_ADDR:-10.77.0.2}"
TCPST_CLIENT_DEV="${TCPST_CLIENT_DEV:-tun1}"
TCPST_CLIENT_KERNEL_ADDR="${TCPST_CLIENT_KERNEL_ADDR:-10.77.1.1/24}"
TCPST_CLIENT_STACK_ADDR="${TCPST_CLIENT_STACK_ADDR:-10.77.1.2}"
TCPST_MTU="${TCPST_MTU:-1500}"
TCPST_MULTI_QUEUE="${TCPST_MULTI_QUEUE:-1}"
TCPST_CLIENT="${TCPST_CLIENT:-1}"
TCPST_HOST_LINK="${TCPST_HOST_LINK:-1}"
TCPST_HOST_ADDR="${TCPST_HOST_ADDR:-10.78.0.1}"
TCPST_NS_LINK_ADDR="${TCPST_NS_LINK_ADDR:-10.78.0.2}"
TCPST_TXQUEUELEN="${TCPST_TXQUEUELEN:-10000}"

die() {
    echo "$(basename "$0"): $*" >&2
    exit 1
}

usage() {
    cat <<USAGE
usage: $(basename "$0") [--ns NAME] [--dev NAME] [--kernel-addr ADDR/PREFIX]
                   [--stack-addr ADDR] [--client-dev NAME] [--client-kernel-addr A/P]
                   [--client-stack-addr ADDR] [--no-client] [--mtu BYTES]
                   [--single-queue] [--no-host-link] [--host-addr ADDR]
                   [--ns-link-addr ADDR]

  --ns NAME              network namespace           (TCPST_NS, default tcpst)
  --dev NAME             server TUN device            (TCPST_DEV, default tun0)
  --kernel-addr A/P      kernel's address on it       (TCPST_KERNEL_ADDR, default 10.77.0.1/24)
  --stack-addr A         server stack's address       (TCPST_STACK_ADDR, default 10.77.0.2)
  --client-dev NAME      load generator's TUN device  (TCPST_CLIENT_DEV, default tun1)
  --client-kernel-addr A/P                            (TCPST_CLIENT_KERNEL_ADDR, default 10.77.1.1/24)
  --client-stack-addr A  load generator's address     (TCPST_CLIENT_STACK_ADDR, default 10.77.1.2)
  --no-client            no load generator device     (TCPST_CLIENT=0)
  --mtu BYTES            device MTU, 68..65535        (TCPST_MTU, default 1500)
  --single-queue         single-queue devices         (TCPST_MULTI_QUEUE=0; default: one queue per core)
  --no-host-link         no veth link from the host   (TCPST_HOST_LINK=0)
  --host-addr A          host's end of the veth link  (TCPST_HOST_ADDR, default 10.78.0.1)
  --ns-link-addr A       namespace's end of it        (TCPST_NS_LINK_ADDR, default 10.78.0.2)
USAGE
}

parse_args() {
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --ns) TCPST_NS="${2:?--ns needs a value}"; shift 2 ;;
            --dev) TCPST_DEV="${2:?--dev needs a value}"; shift 2 ;;
            --kernel-addr) TCPST_KERNEL_ADDR="${2:?--kernel-addr needs a value}"; shift 2 ;;
            --stack-addr) TCPST_STACK_ADDR="${2:?--stack-addr needs a value}"; shift 2 ;;
            --client-dev) TCPST_CLIENT_DEV="${2:?--client-dev needs a value}"; shift 2 ;;
            --client-kernel-addr) TCPST_CLIENT_KERNEL_ADDR="${2:?--client-kernel-addr needs a value}"; shift 2 ;;
            --client-stack-addr) TCPST_CLIENT_STACK_ADDR="${2:?--client-stack-addr needs a value}"; shift 2 ;;
            --no-client) TCPST_CLIENT=0; shift ;;
            --mtu) TCPST_MTU="${2:?--mtu needs a value}"; shift 2 ;;
            --multi-queue) TCPST_MULTI_QUEUE=1; shift ;;
            --single-queue) TCPST_MULTI_QUEUE=0; shift ;;
            --no-host-link) TCPST_HOST_LINK=0; shift ;;
            --host-addr) TCPST_HOST_ADDR="${2:?--host-addr needs a value}"; shift 2 ;;
            --ns-link-addr) TCPST_NS_LINK_ADDR="${2:?--ns-link-addr needs a value}"; shift 2 ;;
            -h|--help) usage; exit 0 ;;
            *) usage >&2; die "unknown argument: $1" ;;
        esac
    done
}

require_root() {
    if [[ "$(id -u)" -ne 0 ]]; then
        die "must run as root (it creates a network namespace and TUN devices); try: sudo $0 $*"
    fi
    command -v ip >/dev/null || die "the 'ip' command (iproute2) is missing"
}

ns_exists() {
    ip netns list | awk '{print $1}' | grep -qxF -- "$TCPST_NS"
}

# The host's end of the veth link (at most 15 bytes, derived from the namespace).
host_link_name() {
    local n="h-$TCPST_NS"
    echo "${n:0:15}"
}
