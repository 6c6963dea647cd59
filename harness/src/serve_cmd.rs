//! `harness serve`: parses the flags into a [`service::ServiceConfig`] and
//! starts the results service; everything it serves lives in the `service`
//! crate.

use std::io::Read as _;
use std::io::Write;

use anyhow::{Context, bail};
use service::{KeySet, Service, ServiceConfig};

use crate::cli::ServeArgs;
use crate::outcome::Outcome;

/// Largest key file read.
const MAX_KEY_FILE_BYTES: u64 = 1 << 20;

/// The keys from the file and the variable (either or both).
fn keys(args: &ServeArgs) -> anyhow::Result<KeySet> {
    let mut keys = KeySet::default();
    if let Some(path) = &args.api_keys_file {
        let mut text = String::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_KEY_FILE_BYTES + 1).read_to_string(&mut text))
            .with_context(|| format!("reading --api-keys-file {}", path.display()))?;
        if text.len() as u64 > MAX_KEY_FILE_BYTES {
            bail!("--api-keys-file {}: larger than 1 MiB", path.display());
        }
        keys.extend(KeySet::parse(&text, &path.display().to_string())?);
    }
    if let Ok(text) = std::env::var(&args.api_keys_env) {
        keys.extend(KeySet::parse(&text, &args.api_keys_env)?);
    }
    if keys.is_empty() {
        bail!(
            "no API key: set {} (read:KEY,upload:KEY) or give --api-keys-file",
            args.api_keys_env
        );
    }
    Ok(keys)
}

/// `harness serve`: serves until Ctrl-C (a normal stop: success, as
/// `harness sim`).
pub fn main(args: &ServeArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let config = ServiceConfig {
        db: args.db.clone(),
        keys: keys(args)?,
        dashboard: if args.public_dashboard {
            service::DashboardAccess::Public
        } else {
            service::DashboardAccess::Login
        },
        uploads: Some(service::Uploads {
            runs_dir: std::path::absolute(&args.runs_dir)
                .with_context(|| format!("--runs-dir {}", args.runs_dir.display()))?,
            limits: service::UploadLimits::default(),
        }),
    };
    let service = Service::open(config)?;
    if args.no_cache {
        service.disable_cache();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener =
            sim::listen(args.listen).with_context(|| format!("--listen {}", args.listen))?;
        let addr = listener.local_addr()?;
        // Prometheus' listener stops with the service (a watch both await).
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let prometheus = match args.prometheus_listen {
            Some(at) => {
                let prom_listener =
                    sim::listen(at).with_context(|| format!("--prometheus-listen {at}"))?;
                let prom_addr = prom_listener.local_addr()?;
                let mut stopped = stopped.clone();
                let service = service.clone();
                let task = tokio::spawn(async move {
                    service
                        .serve_prometheus(prom_listener, async move {
                            let _ = stopped.wait_for(|s| *s).await;
                        })
                        .await
                });
                Some((prom_addr, task))
            }
            None => None,
        };
        writeln!(out, "serving {} on http://{addr}", args.db)?;
        if let Some((prom_addr, _)) = &prometheus {
            writeln!(
                out,
                "history gauges for Prometheus at http://{prom_addr}/metrics"
            )?;
        }
        out.flush()?;
        service
            .serve(listener, async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        let _ = stop.send(true);
        if let Some((_, task)) = prometheus {
            task.await
                .context("the Prometheus listener")?
                .context("the Prometheus listener")?;
        }
        drop(stopped);
        Ok(Outcome::Success)
    })
}
