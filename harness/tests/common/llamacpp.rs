//! A real llama.cpp server (`scripts/peers/llamacpp.sh` installs it).

use std::path::Path;
use std::process::{Command, Stdio};

use super::child::KillOnDrop;
use super::stdout::first_line;

/// A running llama.cpp server; killed when dropped.
pub struct LlamaCpp {
    _child: KillOnDrop,
    /// Its base URL.
    pub url: String,
}

/// Starts llama.cpp on a free port through `sut/tests/peers/serve_llamacpp.py`,
/// or says that `test` is skipped and returns `None` when `LLAMACPP_PYTHON` or
/// `LLAMACPP_MODEL` is unset.
pub fn start(test: &str) -> Option<LlamaCpp> {
    let (Ok(python), Ok(model)) = (
        std::env::var("LLAMACPP_PYTHON"),
        std::env::var("LLAMACPP_MODEL"),
    ) else {
        println!(
            "skipping {test}: LLAMACPP_PYTHON and LLAMACPP_MODEL are unset \
             (eval \"$(bash scripts/peers/llamacpp.sh)\")"
        );
        return None;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sut/tests/peers/serve_llamacpp.py");
    let mut child = Command::new(python)
        .arg(script)
        .args([model.as_str(), "0"])
        .env("THREADS", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The launcher prints its address once it accepts requests.
    let line = first_line(&mut child);
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("launcher said {line:?}"));
    let url = if addr.starts_with("http") {
        addr.to_owned()
    } else {
        format!("http://{addr}")
    };
    Some(LlamaCpp {
        _child: KillOnDrop(child),
        url,
    })
}
