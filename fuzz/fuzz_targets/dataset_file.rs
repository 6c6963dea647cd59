//! Shared by the dataset targets: the loaders read files (that is the API
//! users reach), so each input is written to one scratch file per process,
//! in shared memory where the machine has it.

use std::path::PathBuf;
use std::sync::OnceLock;

/// Writes `data` to this process's scratch file named `name` and returns its
/// path.
pub fn scratch(name: &str, data: &[u8]) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("harness-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch directory");
        dir
    });
    let path = dir.join(name);
    std::fs::write(&path, data).expect("scratch file");
    path
}
