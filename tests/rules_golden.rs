//! Golden examples of Falco's rule language, each stating the exact result Falco gives:
//! exception compilation, list substitution, precedence, missing values, ancestors, `pmatch`
//! and `glob`, escapes, overrides.

use support::events::fixture;
use support::rules::{fires, load_text, load_texts, rule_yaml};
use tasksentry::event::{Fd, FdKind};
use tasksentry::rules::loader::exception_text_for_test;
use tasksentry::rules::syntax::{Expr, PosText, parse, substitute_list};

const EXCEPTIONS_YAML: &str = r#"
  - name: proc_writer
    fields: [proc.name, fd.directory]
    comps: [=, startswith]
    values: [[my-yum, /usr/bin], [my apt, /usr/local/bin]]
  - name: proc_files
    fields: [proc.name, fd.name]
    comps: [=, in]
    values: [[dpkg, [/usr/bin, /bin]], [apt, apt_files]]
  - name: filenames
    fields: fd.filename          # single field => comps defaults to "in"
    values: [python, go]
  - name: empty                   # no values => contributes nothing
    fields: [proc.name]
"#;

const GOLDEN_EXCEPTION_TEXT: &str = r#"(open_write and bin_dir) and not (( proc.name = my-yum and  fd.directory startswith /usr/bin) or ( proc.name = "my apt" and  fd.directory startswith /usr/local/bin)) and not (( proc.name = dpkg and  fd.name in (/usr/bin, /bin)) or ( proc.name = apt and  fd.name in (apt_files))) and not (fd.filename in (python, go))"#;

#[test]
fn exception_compilation_text_is_exact() {
    let text =
        exception_text_for_test("open_write and bin_dir", EXCEPTIONS_YAML).expect("exceptions");
    assert_eq!(text, GOLDEN_EXCEPTION_TEXT);
}

fn exception_rules() -> String {
    let indented: String = EXCEPTIONS_YAML
        .lines()
        .map(|l| format!("  {l}\n"))
        .collect();
    format!(
        "- list: apt_files\n  items: [/bin/ls, /bin/rm]\n\
         - macro: open_write\n  condition: evt.type = open and evt.is_open_write = true\n\
         - macro: bin_dir\n  condition: fd.directory in (/bin, /usr/bin)\n\
         - rule: write bin\n  desc: d\n  condition: open_write and bin_dir\n  output: w %fd.name\n  priority: ERROR\n  exceptions:{indented}"
    )
}

#[test]
fn exception_compilation_after_list_substitution_and_behaviour() {
    let outcome = load_text(&exception_rules());
    let set = outcome.ruleset.as_ref().expect("loads");
    let info = set.rules().next().expect("rule");
    let expected =
        GOLDEN_EXCEPTION_TEXT.replace("fd.name in (apt_files)", "fd.name in ( /bin/ls, /bin/rm )");
    assert_eq!(info.condition, expected);
    // `my apt` writing /usr/bin/ls is not covered by any exception.
    let event = fixture("write_bin");
    assert!(fires(&outcome, "write bin", &event));
    // proc_writer: my-yum below /usr/bin is excepted.
    let mut e = event.clone();
    e.proc.as_mut().expect("proc").name = "my-yum".into();
    assert!(!fires(&outcome, "write bin", &e));
    // proc_files with a list name as value: apt writing /bin/ls is excepted, /bin/cp is not.
    let mut e = event.clone();
    e.proc.as_mut().expect("proc").name = "apt".into();
    e.fd = Some(Box::new(Fd {
        kind: Some(FdKind::File),
        name: Some("/bin/ls".into()),
        open_write: Some(true),
        ..Fd::default()
    }));
    assert!(!fires(&outcome, "write bin", &e));
    e.fd.as_mut().expect("fd").name = Some("/bin/cp".into());
    assert!(fires(&outcome, "write bin", &e));
    // filenames: single field with the default `in`.
    let mut e = event.clone();
    e.fd.as_mut().expect("fd").name = Some("/usr/bin/python".into());
    assert!(!fires(&outcome, "write bin", &e));
}

#[test]
fn list_substitution_golden() {
    let mut t = PosText::synthetic(
        "proc.name in (shell_binaries, \"my tool\") and not proc.pname in (empty_list)",
        0,
    );
    substitute_list(&mut t, "shell_binaries", &["sh".into(), "bash".into()]);
    substitute_list(&mut t, "empty_list", &[]);
    assert_eq!(
        t.text,
        "proc.name in ( sh, bash , \"my tool\") and not proc.pname in (  )"
    );
    // Through the loader, and the semantics: the second check is always false.
    let text = format!(
        "- list: shell_binaries\n  items: [sh, bash]\n- list: empty_list\n  items: []\n{}",
        rule_yaml(
            "r",
            "proc.name in (shell_binaries, \"my tool\") and not proc.pname in (empty_list)"
        )
    );
    let outcome = load_text(&text);
    let set = outcome.ruleset.as_ref().expect("loads");
    assert_eq!(
        set.rules().next().expect("rule").condition,
        "proc.name in ( sh, bash , \"my tool\") and not proc.pname in (  )"
    );
    assert!(fires(&outcome, "r", &fixture("host_bash")));
}

#[test]
fn precedence_golden() {
    // `a and not b or c` == `(a and (not b)) or c`.
    let Ok(Expr::Or(items)) = parse("a and not b or c") else {
        panic!("or at the top")
    };
    assert!(matches!(&items[0], Expr::And(v) if matches!(&v[1], Expr::Not(_))));
    assert!(matches!(&items[1], Expr::Macro { name, .. } if name == "c"));
    assert!(matches!(parse("not not a"), Ok(Expr::Macro { .. })));
    assert!(parse("a and(b)").is_ok());
    assert!(parse("a andb").is_err());
    assert!(parse("fd.name startswith\"/x\"").is_err());
    assert!(parse("proc.name=bash").is_ok());
}

fn fd_event(path: &str) -> tasksentry::event::Event {
    let mut e = fixture("open_passwd");
    e.fd.as_mut().expect("fd").name = Some(path.into());
    e
}

#[test]
fn missing_values_golden() {
    let execve = fixture("curl");
    for (cond, expected) in [
        ("fd.name = /etc/passwd", false),
        ("fd.name != /etc/passwd", false),
        ("not fd.name = /etc/passwd", true),
        ("fd.name exists", false),
    ] {
        let outcome = load_text(&rule_yaml("r", cond));
        assert_eq!(fires(&outcome, "r", &execve), expected, "{cond}");
    }
}

#[test]
fn ancestors_golden() {
    let curl = fixture("curl");
    for (cond, expected) in [
        ("proc.pname = sh", true),
        ("proc.aname[1] = sh", true),
        ("proc.aname[2] = nginx", true),
        ("proc.aname[0] = curl", true),
        ("proc.aname = nginx", true),
        ("proc.aname = curl", false),
        ("proc.aname[5] = x", false),
        ("not proc.aname[5] exists", true),
    ] {
        let outcome = load_text(&rule_yaml("r", cond));
        assert_eq!(fires(&outcome, "r", &curl), expected, "{cond}");
    }
}

#[test]
fn pmatch_and_glob_golden() {
    for (path, cond, expected) in [
        ("/var/run/docker.sock", "fd.name pmatch (/var/run)", true),
        ("/var/runx", "fd.name pmatch (/var/run)", false),
        ("/home/a/.ssh/id", "fd.name glob '/home/*/.ssh/*'", true),
        ("/home/a/b/.ssh/id", "fd.name glob '/home/*/.ssh/*'", true),
    ] {
        let outcome = load_text(&rule_yaml("r", cond));
        assert_eq!(
            fires(&outcome, "r", &fd_event(path)),
            expected,
            "{path} {cond}"
        );
    }
}

#[test]
fn escapes_golden() {
    // `"\ "` is a backslash (the sandbox rule "Sudo Potential Privilege Escalation").
    let mut e = fixture("curl");
    e.proc.as_mut().expect("proc").args = vec!["a\\b".into()];
    let outcome = load_text(&rule_yaml("r", r#"proc.args contains "\ ""#));
    assert!(fires(&outcome, "r", &e));
    e.proc.as_mut().expect("proc").args = vec!["a b".into()];
    assert!(!fires(&outcome, "r", &e));
    // Bare strings are literal: `endswith \` is a backslash.
    e.proc.as_mut().expect("proc").args = vec!["x\\".into()];
    let outcome = load_text(&rule_yaml("r", r"proc.args endswith \"));
    assert!(fires(&outcome, "r", &e));
    // YAML `'it''s'` is the filter text it's.
    e.proc.as_mut().expect("proc").name = "it's".into();
    let outcome = load_text(
        "- rule: r\n  desc: d\n  condition: 'proc.name = \"it''s\"'\n  output: o\n  priority: INFO\n",
    );
    assert!(fires(&outcome, "r", &e));
    // `"a\x41"` is aA.
    e.proc.as_mut().expect("proc").name = "aA".into();
    let outcome = load_text(&rule_yaml("r", r#"proc.name = "a\x41""#));
    assert!(fires(&outcome, "r", &e));
    // `"\q"` is an error.
    let outcome = load_text(&rule_yaml("r", r#"proc.name = "\q""#));
    assert!(outcome.ruleset.is_none());
}

const BASE_RULE: &str = "- rule: my rule\n  desc: d\n  condition: evt.type=open and proc.name=cat\n  output: old %proc.name\n  priority: WARNING\n";

#[test]
fn override_golden() {
    let outcome = load_texts(&[
        BASE_RULE,
        "- rule: my rule\n  condition: and not user.name=root\n  output: new text %proc.name\n  override: {condition: append, output: replace}\n",
    ]);
    let set = outcome.ruleset.as_ref().expect("loads");
    let info = set.rules().next().expect("rule");
    assert_eq!(
        info.condition,
        "evt.type=open and proc.name=cat and not user.name=root"
    );
    let mut out = Vec::new();
    set.evaluate(&fixture("open_passwd"), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].output, "new text cat");
    // Listing output under override without giving it is an error.
    let outcome = load_texts(&[
        BASE_RULE,
        "- rule: my rule\n  condition: and not user.name=root\n  override: {condition: append, output: replace}\n",
    ]);
    assert!(outcome.ruleset.is_none());
    assert!(
        outcome
            .errors()
            .any(|d| d.message.contains("'output' is not defined"))
    );
    // Giving priority without listing it is an error.
    let outcome = load_texts(&[
        BASE_RULE,
        "- rule: my rule\n  condition: and not user.name=root\n  priority: ERROR\n  override: {condition: append}\n",
    ]);
    assert!(outcome.ruleset.is_none());
    assert!(
        outcome
            .errors()
            .any(|d| d.message.contains("Unexpected key 'priority'"))
    );
}
