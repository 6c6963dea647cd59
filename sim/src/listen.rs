//! Listening sockets for the simulator (and the harness's other servers).

/// How many connections a listener's kernel queue holds before the
/// application accepts them (Linux caps it at `net.core.somaxconn`, 4096
/// by default since 5.4).
///
/// `TcpListener::bind` in std, mio and tokio asks for 128. A load generator
/// (`harness run`, and every peer client) opens a connection per concurrent
/// stream as a run starts: at 10,000 requests a second that is about a
/// thousand connections in the first 100 ms, far more than the simulator
/// accepts meanwhile. With 128 the queue overflowed, the kernel dropped the
/// SYNs, and those requests waited for the client's 1 s SYN retransmission:
/// 172 of the first 1,087 requests of a 10,375 QPS run, each charged a
/// second of client-added TTFT.
pub const LISTEN_BACKLOG: u32 = 4096;

/// A listening TCP socket on `addr` with [`LISTEN_BACKLOG`] (and
/// `SO_REUSEADDR`, as `TcpListener::bind` sets it). Call it on a runtime.
pub fn listen(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How many of `n` connections to `listener` complete within 500 ms
    /// each while nothing accepts them: the kernel's queue takes them, or
    /// drops their SYNs once it is full.
    fn connections_queued(listener: &tokio::net::TcpListener, n: usize) -> usize {
        let addr = listener.local_addr().unwrap();
        let mut open = Vec::new();
        for _ in 0..n {
            match std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(500))
            {
                Ok(stream) => open.push(stream),
                Err(_) => break,
            }
        }
        open.len()
    }

    #[test]
    fn listeners_queue_a_connection_storm_that_a_default_bind_drops() {
        let somaxconn: usize = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        // The kernel caps every backlog at somaxconn: below this the two
        // listeners cannot differ.
        const STORM: usize = 300;
        if somaxconn <= STORM {
            return;
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap();
        let _entered = runtime.enter();
        let ours = listen(std::net::SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        assert_eq!(connections_queued(&ours, STORM), STORM);
        // What every listener had before: tokio's bind asks for 128, so the
        // storm stalls on a dropped SYN after about that many.
        let default = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        assert!(connections_queued(&default, STORM) < STORM);
    }
}
