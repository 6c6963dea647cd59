//! Reading input files with a size limit suited to their kind.
//!
//! A wrong path must be refused quickly, not read until memory runs out:
//! `/dev/zero` given as a config file is a character device that never
//! ends. Small files (config files, key files) are read up to a limit of
//! their kind; a file that is larger is refused, naming the limit. A
//! dataset may be gigabytes, so it is not capped, but it must be a regular
//! file (a device or a pipe has no size and may never end).
//!
//! Errors are [`std::io::Error`]s so every caller keeps its own error type,
//! which names the file.

use std::io::{self, Read};
use std::path::Path;

/// The most a LoadGen config file (`mlperf.conf`, `user.conf`,
/// `audit.config`) may hold. The complete `mlperf.conf` is about 10 kB.
pub const CONF_FILE_LIMIT: u64 = 1 << 20;

/// The most a file holding one secret (an API key) may hold.
pub const SECRET_FILE_LIMIT: u64 = 64 << 10;

/// Reads all of `path` if it holds at most `limit` bytes. Anything larger
/// (including an endless device) is an error after reading `limit + 1`
/// bytes, so the time and memory spent are bounded by the limit.
pub fn read_limited(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "it is larger than {}, the most a file of this kind may hold",
                human_bytes(limit)
            ),
        ));
    }
    Ok(bytes)
}

/// Like [`read_limited`], as UTF-8 text.
pub fn read_limited_to_string(path: &Path, limit: u64) -> io::Result<String> {
    String::from_utf8(read_limited(path, limit)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "it is not UTF-8 text"))
}

/// Checks that `path` is a regular file (following symbolic links) and
/// returns its size. A device (`/dev/zero`, `/dev/urandom`), a pipe or a
/// directory is refused, naming what it is.
pub fn regular_file_size(path: &Path) -> io::Result<u64> {
    let meta = std::fs::metadata(path)?;
    if meta.is_file() {
        return Ok(meta.len());
    }
    let what = if meta.is_dir() {
        "a directory"
    } else {
        special_kind(&meta)
    };
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("it is {what}, not a regular file"),
    ))
}

#[cfg(unix)]
fn special_kind(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_fifo() {
        "a pipe"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a file"
    }
}

#[cfg(not(unix))]
fn special_kind(_: &std::fs::Metadata) -> &'static str {
    "not a file"
}

/// `1 MiB`, `64 KiB`, `12 B`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 || value.fract() == 0.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endless_device_is_refused_at_the_limit() {
        let e = read_limited(Path::new("/dev/zero"), 4096).unwrap_err();
        assert!(e.to_string().contains("larger than 4 KiB"), "{e}");
        let e = regular_file_size(Path::new("/dev/zero")).unwrap_err();
        assert!(e.to_string().contains("character device"), "{e}");
    }

    #[test]
    fn a_file_within_the_limit_is_read_whole() {
        let dir = std::env::temp_dir().join(format!("loadgen-input-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        std::fs::write(&path, b"abcd").unwrap();
        assert_eq!(read_limited(&path, 4).unwrap(), b"abcd");
        assert!(read_limited(&path, 3).is_err());
        assert_eq!(regular_file_size(&path).unwrap(), 4);
        assert!(
            regular_file_size(&dir)
                .unwrap_err()
                .to_string()
                .contains("directory")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(64 << 10), "64 KiB");
        assert_eq!(human_bytes(1 << 20), "1 MiB");
        assert_eq!(human_bytes(3 << 29), "1.5 GiB");
    }
}
