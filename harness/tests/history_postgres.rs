//! `harness run --db postgres://...` and `harness history --db postgres://...`
//! end to end, against the real PostgreSQL server of
//! `scripts/peers/postgres.sh`.
// Skip message and unwraps in test helpers.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod common {
    pub mod paths;
    pub mod postgres;
}

use std::process::{Command, Output};

use common::paths::sample_dataset;
use common::postgres::own_schema;

const QUICK_CONF: &str = "\
*.Server.target_qps = 500
*.Server.min_duration = 500
*.Server.min_query_count = 480
";

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn runs_are_recorded_on_a_postgres_server_and_its_password_is_kept_out_of_run_json() {
    let test = "runs_are_recorded_on_a_postgres_server_and_its_password_is_kept_out_of_run_json";
    let Ok(server) = std::env::var("HARNESS_TEST_PG_URL") else {
        println!(
            "skipping {test}: HARNESS_TEST_PG_URL is unset (eval \"$(bash scripts/peers/postgres.sh)\")"
        );
        return;
    };
    // This test's own schema, so it sees only its runs.
    let schema = "harness_cli_history";
    let url = own_schema(&server, schema);
    let config: postgres::Config = server.parse().unwrap();
    let password = String::from_utf8(config.get_password().unwrap().to_vec()).unwrap();

    let scratch = tempfile::tempdir().unwrap();
    std::fs::write(scratch.path().join("user.conf"), QUICK_CONF).unwrap();
    let dataset = sample_dataset();
    for (i, qps) in ["400", "500"].iter().enumerate() {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_harness"));
        cmd.current_dir(scratch.path())
            .args(["run", "--quiet", "--no-report", "--user-conf", "user.conf"])
            .args(["--max-tokens", "16", "--scenario", "Server"])
            .args(["--sim-profile", "tiny-fast", "--target-qps", qps])
            .arg("--dataset-path")
            .arg(&dataset);
        // Both spellings of the flag.
        if i == 0 {
            cmd.args(["--db", &url]);
        } else {
            cmd.arg(format!("--db={url}"));
        }
        let output = cmd.output().unwrap();
        // 3: finished but INVALID (e.g. early stopping on a loaded machine);
        // recorded all the same, and validity is not what this test is about.
        assert!(
            matches!(output.status.code(), Some(0 | 3)),
            "{}",
            text(&output)
        );
        assert!(!text(&output).contains(&password), "{}", text(&output));
    }
    // Nothing went to a local SQLite file.
    assert!(!scratch.path().join("runs/history.sqlite").exists());

    let mut run_ids = Vec::new();
    for entry in std::fs::read_dir(scratch.path().join("runs")).unwrap() {
        let dir = entry.unwrap().path();
        let manifest = std::fs::read_to_string(dir.join("run.json")).unwrap();
        assert!(!manifest.contains(&password), "{manifest}");
        assert!(manifest.contains(":***@"), "{manifest}");
        run_ids.push(dir.file_name().unwrap().to_string_lossy().into_owned());
    }
    run_ids.sort();
    assert_eq!(run_ids.len(), 2);

    let history = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_harness"))
            .current_dir(scratch.path())
            .args(["history", "--db", &url])
            .args(args)
            .output()
            .unwrap()
    };
    let listed = history(&[]);
    assert!(listed.status.success(), "{}", text(&listed));
    let stdout = String::from_utf8_lossy(&listed.stdout);
    let newest = stdout.find(&run_ids[1]).expect("newest listed");
    let oldest = stdout.find(&run_ids[0]).expect("oldest listed");
    assert!(newest < oldest, "newest first: {stdout}");

    let trend = history(&["--metric", "target_qps"]);
    assert!(trend.status.success(), "{}", text(&trend));
    let stdout = String::from_utf8_lossy(&trend.stdout);
    let values: Vec<&str> = stdout
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    assert_eq!(values, ["400.000", "500.000"], "{stdout}");

    // A wrong password fails with the server named, and no password shown.
    let wrong = url.replacen(&password, "not-the-password", 1);
    let output = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["history", "--db", &wrong])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let shown = text(&output);
    assert!(shown.contains(":***@127.0.0.1"), "{shown}");
    assert!(
        !shown.contains("not-the-password") && !shown.contains(&password),
        "{shown}"
    );
}
