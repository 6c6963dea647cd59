//! The simulator served over HTTP on 127.0.0.1:0, on its own runtime.

/// A running simulator; it stops when dropped.
pub struct Sim {
    /// Its base URL, `http://127.0.0.1:PORT`.
    pub url: String,
    _runtime: tokio::runtime::Runtime,
    _handle: ::sim::SimHandle,
}

/// Starts the `tiny-fast` profile with `seed`, after `configure` (faults,
/// latencies) has adjusted it.
pub fn start(seed: u64, configure: impl FnOnce(&mut ::sim::SimConfig)) -> Sim {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut config = ::sim::SimConfig::from_profile("tiny-fast").unwrap();
    config.seed = seed;
    configure(&mut config);
    let handle = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        ::sim::Simulator::start(config, listener).unwrap()
    });
    Sim {
        url: format!("http://{}", handle.local_addr()),
        _runtime: runtime,
        _handle: handle,
    }
}
