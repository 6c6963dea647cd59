//! `harness serve` started by a test on a free port, stopped when the test
//! ends, also when it fails.

use std::process::{Command, Stdio};

use super::child::KillOnDrop;
use super::stdout::first_line;

/// A running `harness serve`; dropping it kills it and waits for it.
pub struct Served {
    /// host:port it announced.
    pub addr: String,
    _child: KillOnDrop,
}

/// `harness serve --listen 127.0.0.1:0`, without the caller's
/// HARNESS_API_KEYS; add the database, keys and options.
pub fn harness_serve() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_harness"));
    command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("HARNESS_API_KEYS");
    command
}

/// Starts `command` (from [`harness_serve`]) and waits for the address it
/// prints once it accepts requests.
pub fn start(command: &mut Command) -> Served {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let line = first_line(&mut child);
    let addr = line.trim().rsplit_once("http://").unwrap().1.to_owned();
    Served {
        addr,
        _child: KillOnDrop(child),
    }
}
