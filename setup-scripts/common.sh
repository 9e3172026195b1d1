# Shared by setup.sh and teardown.sh: defaults, option parsing, checks.
# Every setting can come from the environment or from a flag; flags win.

TCPST_NS="${TCPST_NS:-tcpst}"
TCPST_DEV="${TCPST_DEV:-tun0}"
TCPST_KERNEL_ADDR="${TCPST_KERNEL_ADDR:-10.77.0.1/24}"
TCPST_STACK_ADDR="${TCPST_STACK_ADDR:-10.77.0.2}"
TCPST_MTU="${TCPST_MTU:-1500}"
TCPST_MULTI_QUEUE="${TCPST_MULTI_QUEUE:-0}"

die() {
    echo "$(basename "$0"): $*" >&2
    exit 1
}

usage() {
    cat <<USAGE
usage: $(basename "$0") [--ns NAME] [--dev NAME] [--kernel-addr ADDR/PREFIX]
                   [--stack-addr ADDR] [--mtu BYTES] [--multi-queue]

  --ns NAME           network namespace            (TCPST_NS, default tcpst)
  --dev NAME          TUN device in that namespace (TCPST_DEV, default tun0)
  --kernel-addr A/P   kernel-side address          (TCPST_KERNEL_ADDR, default 10.77.0.1/24)
  --stack-addr A      user-space stack's address   (TCPST_STACK_ADDR, default 10.77.0.2)
  --mtu BYTES         device MTU, 68..65535        (TCPST_MTU, default 1500)
  --multi-queue       create an IFF_MULTI_QUEUE device (TCPST_MULTI_QUEUE=1)
USAGE
}

parse_args() {
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --ns) TCPST_NS="${2:?--ns needs a value}"; shift 2 ;;
            --dev) TCPST_DEV="${2:?--dev needs a value}"; shift 2 ;;
            --kernel-addr) TCPST_KERNEL_ADDR="${2:?--kernel-addr needs a value}"; shift 2 ;;
            --stack-addr) TCPST_STACK_ADDR="${2:?--stack-addr needs a value}"; shift 2 ;;
            --mtu) TCPST_MTU="${2:?--mtu needs a value}"; shift 2 ;;
            --multi-queue) TCPST_MULTI_QUEUE=1; shift ;;
            -h|--help) usage; exit 0 ;;
            *) usage >&2; die "unknown argument: $1" ;;
        esac
    done
}

require_root() {
    if [[ "$(id -u)" -ne 0 ]]; then
        die "must run as root (it creates a network namespace and a TUN device); try: sudo $0 $*"
    fi
    command -v ip >/dev/null || die "the 'ip' command (iproute2) is missing"
}

ns_exists() {
    ip netns list | awk '{print $1}' | grep -qxF -- "$TCPST_NS"
}
