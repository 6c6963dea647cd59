//! Child processes that do not outlive a failing test.

use std::process::Child;

/// A child process killed when the test ends, also when it fails.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
