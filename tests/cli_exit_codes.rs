//! The exit codes the README documents are the ones the binary returns, for each cause.

use std::process::{Command, Output};

use tasksentry::exit;

fn tasksentry(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tasksentry"))
        .args(args)
        .env_remove("TASKSENTRY_CONFIG")
        .output()
        .expect("running tasksentry")
}

fn code(output: &Output) -> Option<u8> {
    output.status.code().and_then(|c| u8::try_from(c).ok())
}

#[test]
fn each_documented_exit_code_is_returned_for_its_cause() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good.yaml");
    std::fs::write(
        &good,
        "- rule: Shell\n  desc: a shell\n  condition: evt.type = execve and proc.name = sh\n  output: shell %proc.cmdline\n  priority: WARNING\n",
    )
    .expect("write");
    let broken = dir.path().join("broken.yaml");
    std::fs::write(&broken, "- rule: Broken\n  condition: proc.name =\n").expect("write");
    let good = good.to_str().expect("utf-8 path");
    let broken = broken.to_str().expect("utf-8 path");
    let clean_task = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/task-definitions/worker-python-with-tasksentry.json"
    );
    let risky_policy = dir.path().join("admin.json");
    std::fs::write(
        &risky_policy,
        r#"{"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}"#,
    )
    .expect("write");
    let truncated = dir.path().join("truncated.json");
    std::fs::write(&truncated, r#"{"containerDefinitions": [{"name": "#).expect("write");
    let risky_policy = risky_policy.to_str().expect("utf-8 path");
    let truncated = truncated.to_str().expect("utf-8 path");

    let cases: [(&[&str], u8, &str); 7] = [
        (&["rules", "validate", good], exit::OK, "valid rules"),
        (
            &["rules", "validate", broken],
            exit::FAILURE,
            "rule file with errors",
        ),
        (&["run", "--no-such-flag"], exit::USAGE, "unknown flag"),
        (&["lint", clean_task], exit::OK, "lint finds nothing high"),
        (&["lint", risky_policy], exit::FAILURE, "lint findings"),
        (&["lint", truncated], exit::INPUT, "lint input unusable"),
        (
            &["run", "--watch-budget", "0"],
            exit::CONFIG,
            "invalid setting",
        ),
    ];
    let readme = include_str!("../README.md");
    for (args, expected, cause) in cases {
        let output = tasksentry(args);
        assert_eq!(
            code(&output),
            Some(expected),
            "{cause}: {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            readme.contains(&format!("`{expected}`")),
            "README does not document exit code {expected} ({cause})"
        );
    }
}
