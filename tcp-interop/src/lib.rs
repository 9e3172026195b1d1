//! Drives tcpstack over a TUN device.
