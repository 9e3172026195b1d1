//! How the stack's errors reach threads: as the `io::Error` kinds kernel sockets give,
//! so code written against [`threadlib::net`] handles both backends alike.

use std::io;

use tcpstack::ConnError;
use threadlib::Error;

/// The threadlib error for a stack error, with the `io::ErrorKind` a kernel socket
/// would report in the same situation.
pub(crate) fn stack_error(e: tcpstack::Error) -> Error {
    use tcpstack::Error as E;
    let kind = match e {
        E::WouldBlock => io::ErrorKind::WouldBlock,
        E::InvalidConnection | E::NotConnected => io::ErrorKind::NotConnected,
        E::InvalidListener => io::ErrorKind::InvalidInput,
        E::AddrInUse(_) => io::ErrorKind::AddrInUse,
        E::NoFreePorts => io::ErrorKind::AddrNotAvailable,
        E::TooManyConnections => io::ErrorKind::OutOfMemory,
        E::SendShutdown => io::ErrorKind::BrokenPipe,
        E::InvalidArgument(_) => io::ErrorKind::InvalidInput,
        E::Connection(c) => match c {
            ConnError::Refused => io::ErrorKind::ConnectionRefused,
            ConnError::Reset => io::ErrorKind::ConnectionReset,
            ConnError::TimedOut { .. } | ConnError::KeepAliveTimedOut => io::ErrorKind::TimedOut,
            ConnError::Aborted => io::ErrorKind::ConnectionAborted,
            _ => io::ErrorKind::Other,
        },
        _ => io::ErrorKind::Other,
    };
    Error::Io(io::Error::new(kind, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(e: tcpstack::Error) -> io::ErrorKind {
        match stack_error(e) {
            Error::Io(e) => e.kind(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors_look_like_kernel_socket_errors() {
        assert_eq!(
            kind(tcpstack::Error::Connection(ConnError::Reset)),
            io::ErrorKind::ConnectionReset
        );
        assert_eq!(
            kind(tcpstack::Error::Connection(ConnError::Refused)),
            io::ErrorKind::ConnectionRefused
        );
        assert_eq!(
            kind(tcpstack::Error::Connection(ConnError::TimedOut {
                retries: 3
            })),
            io::ErrorKind::TimedOut
        );
        assert_eq!(
            kind(tcpstack::Error::SendShutdown),
            io::ErrorKind::BrokenPipe
        );
        assert_eq!(
            kind(tcpstack::Error::AddrInUse(80)),
            io::ErrorKind::AddrInUse
        );
    }
}
