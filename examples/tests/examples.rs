//! Every example runs: each is started with `--self-test`, serves on a free
//! port, sends the requests it documents and checks the answers.

use std::{
    process::Command,
    time::{Duration, Instant},
};

fn run(binary: &str) {
    let mut child = Command::new(binary)
        .arg("--self-test")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the example starts");
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("{binary} did not finish its self-test within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{binary} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("curl "), "prints the requests to try");
    assert!(stdout.contains("ok: GET"), "ran the requests");
}

#[test]
fn drop_in_layers_runs() {
    run(env!("CARGO_BIN_EXE_drop-in-layers"));
}

#[test]
fn plain_hyper_runs() {
    run(env!("CARGO_BIN_EXE_plain-hyper"));
}

/// Runs a self-contained example with `--self-test`, which must succeed;
/// its standard output.
fn self_test(binary: &str) -> String {
    let out = Command::new(binary)
        .arg("--self-test")
        .output()
        .expect("the example runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{binary} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn webhooks_outbox_delivers_the_committed_event_only() {
    let stdout = self_test(env!("CARGO_BIN_EXE_webhooks-outbox"));
    assert!(
        stdout.contains("ok: delivered the committed event once"),
        "{stdout}"
    );
}

#[test]
fn analytics_record_stores_and_counts() {
    let stdout = self_test(env!("CARGO_BIN_EXE_analytics-record"));
    assert!(stdout.contains("self-test ok"), "{stdout}");
}
