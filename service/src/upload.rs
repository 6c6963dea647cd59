//! `POST /api/v1/runs`: a run directory uploaded as a gzip-compressed tar,
//! checked entry by entry while it is unpacked into a hidden staging
//! directory beside the runs, then renamed into place and recorded exactly
//! as a local run (`crate::record`). Nothing is stored unless all of it is
//! valid: a failed upload leaves no directory and no history row.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// Limits on one upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadLimits {
    /// The request body (the compressed archive), in bytes.
    pub compressed_bytes: u64,
    /// Everything the archive unpacks to, in bytes (a gzip bomb stops here).
    pub unpacked_bytes: u64,
    /// Entries in the archive (files and directories).
    pub entries: u64,
}

impl Default for UploadLimits {
    fn default() -> Self {
        UploadLimits {
            compressed_bytes: 256 << 20,
            unpacked_bytes: 4 << 30,
            entries: 10_000,
        }
    }
}

/// Deepest path inside an uploaded run directory.
const MAX_DEPTH: usize = 8;

/// Why an upload was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UploadError {
    /// Past a limit (413).
    #[error("{0}")]
    TooLarge(String),
    /// Not an acceptable archive or not a finished run (400).
    #[error("{0}")]
    Invalid(String),
    /// The server failed (500).
    #[error("{0}")]
    Internal(String),
}

fn invalid(message: impl Into<String>) -> UploadError {
    UploadError::Invalid(message.into())
}

fn internal(what: &str, e: &dyn std::fmt::Display) -> UploadError {
    UploadError::Internal(format!("{what}: {e}"))
}

/// Counts what the decompressor yields and fails past the limit, so a
/// small archive that unpacks to terabytes stops at the limit.
struct Bounded<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.left = self.left.checked_sub(n as u64).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::FileTooLarge, "unpacked size limit")
        })?;
        Ok(n)
    }
}

/// The relative path of an entry inside the run directory: plain names
/// only (a leading `./` is dropped); absolute paths, `..` and overly deep
/// paths are refused.
fn safe_path(raw: &Path) -> Result<PathBuf, UploadError> {
    let shown = raw.display().to_string();
    let shown: String = shown.chars().take(120).collect();
    let mut out = PathBuf::new();
    for component in raw.components() {
        match component {
            Component::Normal(name) => out.push(name),
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(invalid(format!(
                    "entry {shown:?}: a path with .. is refused"
                )));
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(invalid(format!(
                    "entry {shown:?}: an absolute path is refused"
                )));
            }
        }
    }
    if out.components().count() > MAX_DEPTH {
        return Err(invalid(format!(
            "entry {shown:?}: deeper than {MAX_DEPTH} directories"
        )));
    }
    Ok(out)
}

/// Unpacks `archive` (tar.gz) into the empty directory `into`, checking
/// every entry: regular files and directories only, safe paths, within the
/// limits.
pub(crate) fn unpack(archive: &[u8], into: &Path, limits: UploadLimits) -> Result<(), UploadError> {
    if !archive.starts_with(&[0x1f, 0x8b]) {
        return Err(invalid("not a gzip-compressed tar archive (tar czf)"));
    }
    let bounded = Bounded {
        inner: flate2::read::GzDecoder::new(archive),
        left: limits.unpacked_bytes,
    };
    let mut tar = tar::Archive::new(bounded);
    let too_large = || {
        UploadError::TooLarge(format!(
            "the archive unpacks to more than {} bytes",
            limits.unpacked_bytes
        ))
    };
    // An I/O error from the decompressor is a corrupt or truncated archive,
    // or the unpacked limit.
    let read_error = |e: &std::io::Error| {
        if e.kind() == std::io::ErrorKind::FileTooLarge {
            too_large()
        } else {
            invalid(format!("corrupt or truncated archive: {e}"))
        }
    };
    let entries = tar.entries().map_err(|e| read_error(&e))?;
    let mut count = 0u64;
    for entry in entries {
        let mut entry = entry.map_err(|e| read_error(&e))?;
        count += 1;
        if count > limits.entries {
            return Err(UploadError::TooLarge(format!(
                "more than {} entries in the archive",
                limits.entries
            )));
        }
        let raw = entry.path().map_err(|e| read_error(&e))?.into_owned();
        let relative = safe_path(&raw)?;
        let kind = entry.header().entry_type();
        let shown: String = raw.display().to_string().chars().take(120).collect();
        if kind.is_dir() {
            if !relative.as_os_str().is_empty() {
                std::fs::create_dir_all(into.join(&relative))
                    .map_err(|e| internal("creating a directory", &e))?;
            }
            continue;
        }
        if !kind.is_file() {
            let what = if kind.is_symlink() {
                "a symbolic link"
            } else if kind.is_hard_link() {
                "a hard link"
            } else if kind.is_character_special() || kind.is_block_special() {
                "a device file"
            } else if kind.is_fifo() {
                "a FIFO"
            } else {
                "not a regular file or directory"
            };
            return Err(invalid(format!("entry {shown:?}: {what} is refused")));
        }
        if relative.as_os_str().is_empty() {
            return Err(invalid(format!("entry {shown:?}: a file without a name")));
        }
        let target = into.join(&relative);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| internal("creating a directory", &e))?;
        }
        // create_new: a second entry of the same name is refused, not
        // written over the first.
        let mut file = std::fs::File::create_new(&target).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                invalid(format!("entry {shown:?}: given twice"))
            } else {
                internal("writing an uploaded file", &e)
            }
        })?;
        std::io::copy(&mut entry, &mut file).map_err(|e| read_error(&e))?;
    }
    Ok(())
}

/// The run directory inside an unpacked upload: the staging directory
/// itself when run.json lies there, else its one subdirectory (an archive
/// made with `tar czf run.tgz -C runs RUN_ID`).
pub(crate) fn run_root(staging: &Path) -> Result<PathBuf, UploadError> {
    if staging.join(rundir::MANIFEST_FILE).exists() {
        return Ok(staging.to_path_buf());
    }
    let entries: Vec<_> = std::fs::read_dir(staging)
        .map_err(|e| internal("reading the upload", &e))?
        .filter_map(Result::ok)
        .collect();
    match entries.as_slice() {
        [one] if one.file_type().is_ok_and(|t| t.is_dir()) => Ok(one.path()),
        _ => Err(invalid(format!(
            "no {} in the archive (its root, or its one top directory, must be the run \
             directory)",
            rundir::MANIFEST_FILE
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_are_accepted() {
        assert_eq!(
            safe_path(Path::new("./run/records.jsonl")).ok(),
            Some(PathBuf::from("run/records.jsonl"))
        );
        assert!(safe_path(Path::new("run/../../etc/passwd")).is_err());
        assert!(safe_path(Path::new("/etc/passwd")).is_err());
        assert!(safe_path(Path::new("a/b/c/d/e/f/g/h/i")).is_err());
    }

    #[test]
    fn the_unpacked_limit_stops_a_bomb() {
        let mut bounded = Bounded {
            inner: std::io::repeat(0),
            left: 1000,
        };
        let err = std::io::copy(&mut bounded, &mut std::io::sink()).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::FileTooLarge);
    }
}
