//! What a child process says on its piped stdout.

use std::io::{BufRead, BufReader};
use std::process::Child;

/// The first line `child` writes to its piped stdout, where `harness serve`
/// and the peer launchers announce their address once they accept requests.
pub fn first_line(child: &mut Child) -> String {
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    line
}
