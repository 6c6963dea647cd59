//! How the process ends when it cannot end the normal way.
//!
//! - Ctrl-C or SIGTERM while queries are issued asks LoadGen to stop: the
//!   answers in flight get a grace period, then everything measured is
//!   written as an interrupted run (exit 130). A second signal ends the
//!   process at once.
//! - A signal in any other phase (parsing, loading, connecting, writing
//!   history or reports) ends the process at once with exit 130: nothing
//!   there is worth waiting for, and a phase that hangs (a dataset on a
//!   slow disk, a database that never answers) must not keep it alive.
//! - A signal while a finished run's reports are written (they are rendered
//!   to temporary files and renamed into place together, see
//!   [`commit_reports`]) turns its `run.json` from `complete` to
//!   `interrupted` with the reason, and none of that run's reports is put in
//!   place. The history is recorded only after the reports are in place, so
//!   its row never says complete for a run whose reporting was interrupted.
//! - Whatever ends a run before its normal end (an error, a signal, a
//!   panic) leaves its `run.json` with status `failed` or `interrupted` and
//!   the reason, never `running`.
//!
//! The signals are received on a thread of their own, so they are seen in
//! every phase, blocking ones included.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use loadgen::StopSignal;
use rundir::{RunManifest, RunStatus};

use crate::outcome::Outcome;

#[derive(Default)]
struct State {
    /// Set while a test issues queries.
    stop: Option<StopSignal>,
    /// The run directory being written, if any.
    run_dir: Option<PathBuf>,
    /// Set while the reports of the finished run in `run_dir` are written.
    reporting: bool,
    /// Signals received so far.
    signals: u32,
}

static STATE: Mutex<State> = Mutex::new(State {
    stop: None,
    run_dir: None,
    reporting: false,
    signals: 0,
});

fn state() -> MutexGuard<'static, State> {
    // A panic elsewhere while holding the lock leaves valid data.
    STATE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Starts receiving Ctrl-C and SIGTERM, and marks the current run failed
/// on a panic. Call once, before anything slow.
pub fn install() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        end_current_run(RunStatus::Failed, &format!("the harness crashed: {info}"));
        default_hook(info);
    }));
    // `install` returns only once the handlers are registered: a signal that
    // arrives right after it (while user.conf is parsed, say) must find them,
    // not the default action that kills the process without its exit 130.
    let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel::<()>(1);
    let spawned = std::thread::Builder::new()
        .name("harness-signals".into())
        .spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                use tokio::signal::unix::{SignalKind, signal};
                let (Ok(mut int), Ok(mut term)) = (
                    signal(SignalKind::interrupt()),
                    signal(SignalKind::terminate()),
                ) else {
                    return;
                };
                let _ = ready_tx.send(());
                loop {
                    tokio::select! {
                        _ = int.recv() => on_signal(),
                        _ = term.recv() => on_signal(),
                    }
                }
            });
        });
    match spawned {
        // A closed channel means the thread could not register them.
        Ok(_) => {
            if ready_rx.recv().is_err() {
                tracing::warn!("cannot watch for Ctrl-C and SIGTERM");
            }
        }
        Err(e) => tracing::warn!("cannot watch for Ctrl-C and SIGTERM: {e}"),
    }
}

fn on_signal() {
    let mut st = state();
    st.signals += 1;
    if st.signals == 1
        && let Some(stop) = &st.stop
    {
        stop.request();
        let _ = writeln!(
            std::io::stderr(),
            "interrupted: stopping the run and writing what was measured \
             (a second Ctrl-C quits at once)"
        );
        return;
    }
    if st.reporting
        && let Some(dir) = &st.run_dir
    {
        // The lock is held until the exit: the reports cannot be committed
        // between this mark and the end of the process.
        if let Err(e) = RunManifest::interrupt_reporting(
            dir,
            "interrupted by a signal while its reports were written",
        ) {
            let _ = writeln!(
                std::io::stderr(),
                "error: cannot record the run's end in {}: {e}",
                dir.display()
            );
        }
        let _ = writeln!(std::io::stderr(), "interrupted");
        exit_interrupted();
    }
    let dir = st.run_dir.clone();
    drop(st);
    if let Some(dir) = dir {
        mark(&dir, RunStatus::Interrupted, "interrupted by a signal");
    }
    let _ = writeln!(std::io::stderr(), "interrupted");
    exit_interrupted();
}

#[allow(
    clippy::exit,
    reason = "a signal outside the issuing phase ends the process"
)]
fn exit_interrupted() -> ! {
    std::process::exit(i32::from(Outcome::Interrupted.exit_code()))
}

fn mark(dir: &Path, status: RunStatus, reason: &str) {
    if let Err(e) = RunManifest::end_unfinished(dir, status, reason) {
        let _ = writeln!(
            std::io::stderr(),
            "error: cannot record the run's end in {}: {e}",
            dir.display()
        );
    }
}

/// While the returned guard lives, the first signal stops `stop` instead
/// of ending the process.
pub fn issuing(stop: StopSignal) -> IssuingGuard {
    let mut st = state();
    if st.signals > 0 {
        // A signal came before issuing began.
        stop.request();
    }
    st.stop = Some(stop);
    IssuingGuard(())
}

/// See [`issuing`].
#[derive(Debug)]
pub struct IssuingGuard(());

impl Drop for IssuingGuard {
    fn drop(&mut self) {
        state().stop = None;
    }
}

/// The run directory now being written (a later one replaces it).
pub fn set_run_dir(dir: &Path) {
    state().run_dir = Some(dir.to_path_buf());
}

/// The finished run's reports are written from now on until
/// [`commit_reports`]: a signal marks the run interrupted.
pub fn reporting() {
    state().reporting = true;
}

/// Puts the staged reports in place (`commit`) unless a signal has ended
/// the reporting phase: a signal waits until the set is in place (then the
/// run is complete and a signal only ends the process), and a commit
/// never starts once a signal has marked the run interrupted.
pub fn commit_reports<T>(commit: impl FnOnce() -> T) -> T {
    let mut st = state();
    let committed = commit();
    st.reporting = false;
    committed
}

/// The run being written ended in `error` (or anything else that is not
/// its normal end): its `run.json` says so. A run that ended normally is
/// left alone.
pub fn end_current_run(status: RunStatus, reason: &str) {
    let dir = state().run_dir.take();
    if let Some(dir) = dir {
        mark(&dir, status, reason);
    }
}
