//! Our stack as a bench server: a [`Driver`] running a [`ServiceApp`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use iolib::tun::Tun;
use tcpstack::StackConfig;

use crate::apps::ServiceApp;
use crate::driver::{random_secret, Driver, DriverError};
use crate::service::Service;
use testnet::STACK_ADDR;

/// Parameters of the bench server on our stack.
#[derive(Debug, Clone, Copy)]
pub struct ServerConfig {
    /// Port to listen on.
    pub port: u16,
    /// What to do with each connection.
    pub service: Service,
    /// Receive and send buffer bytes per connection.
    pub buffer: usize,
}

/// Serves `config.service` on `STACK_ADDR:port` over `tun` until `stop` is set.
pub fn run_server(tun: Tun, config: ServerConfig, stop: &AtomicBool) -> Result<(), DriverError> {
    let mut stack_config = StackConfig::new(STACK_ADDR, random_secret()?);
    stack_config.tcp.send_buffer = config.buffer;
    stack_config.tcp.recv_buffer = config.buffer;
    let mut driver = Driver::new(tun, stack_config, None)?;
    let listener = driver.stack().listen(config.port, 128)?;
    let mut app = ServiceApp::new(config.service, listener);
    driver.run(&mut app, |_, _| stop.load(Ordering::Relaxed), Duration::MAX)
}
