//! `harness push RUN_DIR --server URL`: the client of the results
//! service's `POST /api/v1/runs`. The run directory is checked here first
//! (the same check the server makes), packed as a tar.gz in memory and
//! uploaded with an upload key, which is never printed.
//!
//! Exit codes: 0 uploaded and recorded; 1 refused (not a finished run
//! here, or the server's 4xx: already recorded, invalid, too large, wrong
//! key) or an error (no key, unreachable server); 2 usage.

use std::io::{Read as _, Write};
use std::path::Path;

use anyhow::{Context, bail};

use crate::cli::PushArgs;
use crate::outcome::Outcome;

/// Largest key file read.
const MAX_KEY_FILE_BYTES: u64 = 64 << 10;

/// The upload key: the file's first line, else the variable.
fn api_key(args: &PushArgs) -> anyhow::Result<String> {
    let key = if let Some(path) = &args.api_key_file {
        let mut text = String::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_KEY_FILE_BYTES).read_to_string(&mut text))
            .with_context(|| format!("reading --api-key-file {}", path.display()))?;
        text.lines().next().unwrap_or("").trim().to_owned()
    } else {
        std::env::var(&args.api_key_env)
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    if key.is_empty() {
        bail!(
            "no API key: set {} to an upload key, or give --api-key-file",
            args.api_key_env
        );
    }
    Ok(key)
}

/// The run directory as a gzip-compressed tar, its files under one top
/// directory named after the run (symbolic links kept as links, which the
/// server refuses).
fn pack(dir: &Path, run_id: &str) -> anyhow::Result<Vec<u8>> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    tar.follow_symlinks(false);
    tar.append_dir_all(run_id, dir)
        .with_context(|| format!("packing {}", dir.display()))?;
    Ok(tar.into_inner()?.finish()?)
}

/// `harness push`.
pub fn main(args: &PushArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let server = args.server.trim_end_matches('/');
    let shown = crate::shared::redact_url(server);
    if !(server.starts_with("http://") || server.starts_with("https://")) {
        return Err(crate::outcome::UsageError(format!(
            "--server {shown}: give an http:// or https:// URL"
        ))
        .into());
    }
    let key = api_key(args)?;
    let run = service::record::read_finished(&args.run_dir)?;
    let run_id = run.manifest.run_id;
    let archive = pack(&args.run_dir, &run_id)?;
    let url = format!("{server}/api/v1/runs");
    let (status, body) =
        upload(&url, &key, archive).with_context(|| format!("uploading to {shown}/api/v1/runs"))?;
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    if status == 201 {
        let path = answer["url"].as_str().unwrap_or("");
        writeln!(out, "uploaded {run_id}: {shown}{path}")?;
        return Ok(Outcome::Success);
    }
    let reason = answer["error"]
        .as_str()
        .map_or_else(|| body.chars().take(300).collect(), str::to_owned);
    bail!("{shown} refused run {run_id} (HTTP {status}): {reason}")
}

/// POSTs the archive; the status and body of the answer.
fn upload(url: &str, key: &str, archive: Vec<u8>) -> anyhow::Result<(u16, String)> {
    // Err means a provider is already installed, which is what we need.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut key = reqwest::header::HeaderValue::from_str(key)
            .map_err(|_| anyhow::anyhow!("the API key holds characters a header cannot"))?;
        key.set_sensitive(true);
        let client = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()?;
        let response = client
            .post(url)
            .header("x-api-key", key)
            .header(reqwest::header::CONTENT_TYPE, "application/gzip")
            .body(archive)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.without_url()))?;
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        Ok((status, body))
    })
}
