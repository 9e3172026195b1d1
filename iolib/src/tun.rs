//! Linux TUN devices: whole IPv4 packets in and out of a non-blocking fd.
