//! Tests of the whole engine: the candidate index, the memo and the needle search agree with
//! plain evaluation, on small rule sets and on the default and Falco rules.

use super::*;

#[test]
fn priority_parsing_and_order() {
    assert_eq!("INFO".parse::<Priority>(), Ok(Priority::Informational));
    assert_eq!("Warning".parse::<Priority>(), Ok(Priority::Warning));
    assert!("warn".parse::<Priority>().is_err());
    assert!(Priority::Emergency > Priority::Debug);
    assert!(Priority::Critical > Priority::Warning);
    assert_eq!(Priority::Informational.to_string(), "Informational");
}

use crate::event::{Ancestor, Collector, Container, Fd, FdKind, Process};

fn set_of(text: &str, matching: RuleMatching) -> RuleSet {
    let outcome = load(
        &[RuleSource {
            name: "t.yaml".into(),
            text: text.into(),
        }],
        &LoadOptions {
            strict: false,
            rule_matching: matching,
        },
    );
    let errors: Vec<String> = outcome.errors().map(|d| d.to_string()).collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    outcome.ruleset.expect("ruleset")
}

fn rule(name: &str, condition: &str) -> String {
    format!("- rule: {name}\n  desc: d\n  output: o\n  priority: INFO\n  condition: {condition}\n")
}

fn exec(name: &str, args: &[&str]) -> Event {
    let mut e = Event::new(EventType::Execve, Collector::Procscan);
    e.proc = Some(Box::new(Process {
        name: name.into(),
        args: args.iter().map(|a| (*a).to_string()).collect(),
        ..Process::default()
    }));
    e
}

fn names<'a>(set: &'a RuleSet, e: &Event) -> Vec<&'a str> {
    let mut out = Vec::new();
    set.evaluate(e, &mut out);
    out.iter().map(|m| m.rule.name.as_str()).collect()
}

/// What `evaluate` must return: every candidate of the type index evaluated in order,
/// without the value keys.
fn reference<'a>(set: &'a RuleSet, e: &Event) -> Vec<&'a str> {
    let cx = EvalCtx::new(e);
    let t = e.evt_type().index();
    let hit = |i: &&u32| set.rules[**i as usize].cond.eval_uncached(&cx);
    let name = |i: &u32| set.rules[*i as usize].info.name.as_str();
    match set.matching {
        RuleMatching::First => set.index.by_type[t]
            .iter()
            .find(hit)
            .map(name)
            .into_iter()
            .collect(),
        RuleMatching::All => {
            let specific: Vec<&str> = set.index.specific[t].iter().filter(hit).map(name).collect();
            if specific.is_empty() {
                set.index.all_types.iter().filter(hit).map(name).collect()
            } else {
                specific
            }
        }
    }
}

#[test]
fn keyed_rules_keep_rule_order_and_skip_absent_fields() {
    let text = [
        rule("a", "evt.type = execve and proc.name in (sh, bash)"),
        rule("b", "evt.type = execve and proc.args contains x"),
        rule(
            "c",
            "evt.type = execve and (proc.name = sh or (proc.name = zsh and proc.args contains y))",
        ),
        rule("d", "proc.name = sh"),
        rule("e", "evt.type = execve and not proc.name in (sh)"),
    ]
    .concat();
    let all = set_of(&text, RuleMatching::All);
    let first = set_of(&text, RuleMatching::First);
    assert_eq!(names(&all, &exec("sh", &["x"])), ["a", "b", "c"]);
    assert_eq!(names(&first, &exec("sh", &["x"])), ["a"]);
    assert_eq!(names(&all, &exec("zsh", &["y"])), ["c", "e"]);
    assert_eq!(names(&all, &exec("zsh", &["x"])), ["b", "e"]);
    assert_eq!(names(&first, &exec("zsh", &["x"])), ["b"]);
    // Only the all-types rule can match a non-execve event.
    let mut open = exec("sh", &[]);
    open.evt.evt_type = EventType::Open;
    assert_eq!(names(&all, &open), ["d"]);
    // No process: keyed rules are skipped (their test on the absent field is false), and
    // `not` of a test on an absent field holds.
    let bare = Event::new(EventType::Execve, Collector::Procscan);
    assert_eq!(names(&all, &bare), ["e"]);
    assert_eq!(names(&first, &bare), ["e"]);
}

#[test]
fn merged_or_operands_mean_the_same() {
    let text = [
        rule(
            "contains",
            "evt.type = execve and (proc.cmdline contains \"a.b\" or proc.cmdline contains \"(x\" or proc.cmdline contains \"c+\" or proc.cmdline contains zz or proc.cmdline contains anyof (\"q*\"))",
        ),
        rule(
            "eq",
            "evt.type = execve and (proc.exe = /bin/a or proc.exe in (/bin/b, /bin/c) or proc.cwd = /tmp)",
        ),
        rule("dir", "evt.type = execve and evt.dir = < and not evt.dir = > and proc.name = dir"),
        rule("never", "evt.type = execve and evt.dir = > and proc.name = dir"),
    ]
    .concat();
    let set = set_of(&text, RuleMatching::All);
    for (args, hit) in [
        (&["a.b"][..], true),
        (&["axb"][..], false),
        (&["f(x"][..], true),
        (&["c+"][..], true),
        (&["c"][..], false),
        (&["--zz--"][..], true),
        (&["q*"][..], true),
        (&["q"][..], false),
    ] {
        let got = names(&set, &exec("p", args));
        assert_eq!(got.contains(&"contains"), hit, "{args:?}: {got:?}");
    }
    let mut e = exec("p", &[]);
    assert!(names(&set, &e).is_empty());
    for (exe, cwd, hit) in [
        (Some("/bin/b"), None, true),
        (Some("/bin/a"), None, true),
        (Some("/bin/d"), None, false),
        (None, Some("/tmp"), true),
        (Some("/bin/d"), Some("/tmpx"), false),
    ] {
        let p = e.proc.as_mut().expect("proc");
        p.exe = exe.map(Into::into);
        p.cwd = cwd.map(Into::into);
        assert_eq!(names(&set, &e) == ["eq"], hit, "{exe:?} {cwd:?}");
    }
    assert_eq!(names(&set, &exec("dir", &[])), ["dir"]);

    let mixed = rule(
        "mixed",
        "evt.type = execve and (proc.exe startswith /a/ or proc.exe endswith .sh or proc.exe = /x or proc.exe glob \"/g*z\" or proc.exe pmatch (/p) or proc.exe contains anyof (mm, nn) or proc.name = n)",
    );
    let set = set_of(&mixed, RuleMatching::All);
    for (exe, hit) in [
        (Some("/a/b"), true),
        (Some("/b/a/"), false),
        (Some("/b/run.sh"), true),
        (Some("/b/run.shx"), false),
        (Some("/x"), true),
        (Some("/xy"), false),
        (Some("/gaz"), true),
        (Some("/ga"), false),
        (Some("/p/q"), true),
        (Some("/pq"), false),
        (Some("/nn"), true),
        (None, false),
    ] {
        let mut e = exec("p", &[]);
        e.proc.as_mut().expect("proc").exe = exe.map(Into::into);
        assert_eq!(names(&set, &e) == ["mixed"], hit, "{exe:?}");
    }
    assert_eq!(names(&set, &exec("n", &[])), ["mixed"]);
}

/// The default rules plus Falco's three files (stable, incubating, sandbox order).
fn default_and_falco_sources() -> Vec<RuleSource> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/rules/falco");
    let mut sources = defaults::default_sources();
    for n in [
        "falco_rules.yaml",
        "falco-incubating_rules.yaml",
        "falco-sandbox_rules.yaml",
    ] {
        sources.push(RuleSource {
            name: n.into(),
            text: std::fs::read_to_string(format!("{dir}/{n}")).expect("read"),
        });
    }
    sources
}

#[test]
fn index_agrees_with_evaluating_every_candidate_on_default_and_falco_rules() {
    let sources = default_and_falco_sources();
    let names_ = [
        "sh", "bash", "nc", "ncat", "socat", "curl", "wget", "xmrig", "apt", "pip", "python3",
        "node", "sudo", "find", "grep", "cat", "base64", "crontab", "useradd", "nmap", "java",
        "mysqld", "worker", "ld.so", "memfd:x", "debugfs", "rm", "shred", "gdb",
    ];
    let argv: [&[&str]; 5] = [
        &[],
        &["-c", "id"],
        &["-e", "/bin/sh", "10.0.0.1", "4444"],
        &["stratum+tcp://pool", "-o"],
        &["-d", "aGVsbG8="],
    ];
    let mut total = 0;
    for matching in [RuleMatching::All, RuleMatching::First] {
        let set = load(
            &sources,
            &LoadOptions {
                strict: false,
                rule_matching: matching,
            },
        )
        .ruleset
        .expect("ruleset");
        for name in names_ {
            for args in argv {
                for (tty, parent, in_container) in [
                    (0, "node", true),
                    (34816, "bash", true),
                    (0, "nginx", false),
                ] {
                    let mut e = exec(name, args);
                    let p = e.proc.as_mut().expect("proc");
                    p.exepath = Some(format!("/usr/bin/{name}"));
                    p.exe = Some(format!("/tmp/{name}"));
                    p.tty = Some(tty);
                    p.euid = Some(0);
                    p.user = Some("root".into());
                    p.ancestors = vec![Ancestor {
                        pid: 1,
                        name: parent.into(),
                        exe: None,
                        exepath: None,
                        args: vec![],
                    }];
                    if in_container {
                        e.container = Some(Box::new(Container {
                            id: "abc".into(),
                            ..Container::default()
                        }));
                    }
                    let mut open = e.clone();
                    open.evt.evt_type = EventType::Open;
                    open.fd = Some(Box::new(Fd {
                        kind: Some(FdKind::File),
                        name: Some(format!("/etc/{name}")),
                        open_write: Some(true),
                        ..Fd::default()
                    }));
                    for ev in [e, open] {
                        let want = reference(&set, &ev);
                        total += want.len();
                        assert_eq!(
                            names(&set, &ev),
                            want,
                            "{name} {args:?} {:?}",
                            ev.evt_type()
                        );
                    }
                }
            }
        }
    }
    assert!(total > 10, "the events must match some rules ({total})");
}

/// Default + all Falco rules, loaded once per matching mode.
fn default_and_falco(matching: RuleMatching) -> &'static RuleSet {
    static ALL: std::sync::OnceLock<RuleSet> = std::sync::OnceLock::new();
    static FIRST: std::sync::OnceLock<RuleSet> = std::sync::OnceLock::new();
    let cell = match matching {
        RuleMatching::All => &ALL,
        RuleMatching::First => &FIRST,
    };
    cell.get_or_init(|| {
        let sources = default_and_falco_sources();
        load(
            &sources,
            &LoadOptions {
                strict: false,
                rule_matching: matching,
            },
        )
        .ruleset
        .expect("ruleset")
    })
}

fn count_memo(node: &eval::Node) -> usize {
    use eval::Node;
    match node {
        Node::Memo(_, inner) => 1 + count_memo(inner),
        Node::And(items) | Node::Or(items) => items.iter().map(count_memo).sum(),
        Node::Not(inner) => count_memo(inner),
        _ => 0,
    }
}

#[test]
fn default_and_falco_rules_share_sub_conditions() {
    let set = default_and_falco(RuleMatching::All);
    let memoised = set.rules.iter().map(|r| count_memo(&r.cond)).sum::<usize>();
    let rules_with = set.rules.iter().filter(|r| count_memo(&r.cond) > 0).count();
    // `container.id != host`, `open_read`'s checks, ... occur in most rules.
    assert!(
        rules_with * 2 > set.rules.len(),
        "{rules_with} of {} rules",
        set.rules.len()
    );
    assert!(memoised > rules_with, "{memoised}");
}

/// Every `contains` test on `proc.cmdline` of the default and Falco rules is answered
/// from one automaton (one search per event).
#[test]
fn default_and_falco_cmdline_contains_tests_share_one_search() {
    fn collect<'a>(node: &'a eval::Node, out: &mut Vec<&'a optimize::needles::NeedleTest>) {
        use eval::{Node, Test};
        fn of_test<'a>(t: &'a Test, out: &mut Vec<&'a optimize::needles::NeedleTest>) {
            match t {
                Test::Needles(n) => out.push(n),
                Test::Modified(_, ts) => ts.iter().for_each(|t| of_test(t, out)),
                _ => {}
            }
        }
        match node {
            Node::And(items) | Node::Or(items) => items.iter().for_each(|n| collect(n, out)),
            Node::Not(inner) | Node::Memo(_, inner) => collect(inner, out),
            Node::Check(c) => of_test(&c.1, out),
            Node::Const(_) | Node::TypeIn(_) => {}
        }
    }
    let set = default_and_falco(RuleMatching::All);
    let mut tests = Vec::new();
    for r in &set.rules {
        collect(&r.cond, &mut tests);
    }
    assert!(tests.len() >= 10, "{} converted tests", tests.len());
    assert!(
        tests
            .iter()
            .all(|t| std::sync::Arc::ptr_eq(&t.index, &tests[0].index))
    );
    // The miner needles are found in a command line, and only the tests looking for them
    // hold.
    let ev = exec("xmrig", &["-o", "stratum+tcp://pool:3333"]);
    let cx = EvalCtx::new(&ev);
    let holding = tests
        .iter()
        .filter(|t| t.on_event(&cx) == Some(true))
        .count();
    assert!(holding >= 1 && holding < tests.len(), "{holding}");
    for t in &tests {
        let plain = ev.proc.as_ref().map(|p| p.cmdline()).unwrap_or_default();
        let cx0 = EvalCtx::new(&ev);
        assert_eq!(
            t.on_event(&cx).unwrap_or(false),
            t.original.on_constant_str(&plain).unwrap_or(false),
            "{:?}",
            t.original
        );
        assert_eq!(t.on_value(&plain, &cx0), t.on_event(&cx).unwrap_or(false));
    }
}

mod props {
    use super::*;
    use proptest::prelude::*;

    const NAMES: &[&str] = &[
        "sh", "bash", "nc", "curl", "wget", "xmrig", "python3", "node", "sudo", "cat", "base64",
        "crontab", "useradd", "worker", "java", "sshd", "find", "rm", "ld.so",
    ];
    const PATHS: &[&str] = &[
        "/etc/shadow",
        "/etc/passwd",
        "/etc/sudoers.d/x",
        "/root/.ssh/id_rsa",
        "/home/app/.ssh/authorized_keys",
        "/home/app/.ssh/id_ed25519.pub",
        "/root/.aws/credentials",
        "/srv/data/orders.json",
        "/usr/bin/ls",
        "/bin/sh",
        "/tmp/x.sh",
        "/dev/shm/a",
        "/proc/1/environ",
        "/var/log/syslog",
        "/root/.bash_history",
        "/etc/cron.d/job",
        "/etc/ld.so.preload",
        "/dev/sda",
        "x",
        "/",
        "/etc/",
    ];
    const ARGS: &[&[&str]] = &[
        &[],
        &["-c", "id"],
        &["-e", "/bin/sh", "10.0.0.1", "4444"],
        &["stratum+tcp://pool", "-o"],
        &["-d", "aGVsbG8="],
        &["http://169.254.169.254/latest/meta-data/"],
        &["--queue", "orders"],
    ];
    const TYPES: &[EventType] = &EventType::ALL;

    prop_compose! {
        fn events()(
            t in 0..TYPES.len(),
            name in 0..NAMES.len(),
            parent in 0..NAMES.len(),
            args in 0..ARGS.len(),
            path in 0..PATHS.len(),
            exe in 0..PATHS.len(),
            flags in any::<u16>(),
            port in prop::sample::select(vec![22u16, 80, 443, 3333, 4444, 5432, 40312]),
        ) -> Event {
            let mut e = exec(NAMES[name], ARGS[args]);
            e.evt.evt_type = TYPES[t];
            let bit = |i: u32| flags & (1 << i) != 0;
            let p = e.proc.as_mut().expect("proc");
            p.exe = Some(PATHS[exe].into());
            p.exepath = Some(format!("/usr/bin/{}", NAMES[name]));
            p.tty = Some(if bit(0) { 34816 } else { 0 });
            p.euid = Some(if bit(1) { 0 } else { 1000 });
            p.user = Some(if bit(1) { "root" } else { "app" }.into());
            p.cwd = Some(if bit(12) { "/tmp" } else { "/srv" }.into());
            p.cap_effective = Some(if bit(13) { 1 << 21 } else { 0 });
            if bit(2) {
                p.ancestors = vec![Ancestor {
                    pid: 1,
                    name: NAMES[parent].into(),
                    exe: Some(format!("/usr/bin/{}", NAMES[parent])),
                    exepath: None,
                    args: vec![],
                }];
            }
            if bit(3) {
                p.env = vec![("LD_PRELOAD".into(), "/tmp/x.so".into())];
            }
            if bit(4) {
                e.container = Some(Box::new(Container {
                    id: "abc".into(),
                    image: Some("docker.io/library/nginx:1".into()),
                    ..Container::default()
                }));
            }
            let ip = matches!(TYPES[t], EventType::Connect | EventType::Accept | EventType::Listen);
            if ip {
                e.fd = Some(Box::new(Fd {
                    kind: Some(FdKind::Ipv4),
                    l4proto: Some(if bit(5) { "udp" } else { "tcp" }.into()),
                    cip: "10.0.1.17".parse().ok(),
                    cport: Some(40312),
                    sip: if bit(6) { "169.254.169.254" } else { "10.0.2.30" }.parse().ok(),
                    sport: Some(port),
                    local_is_client: Some(true),
                    ..Fd::default()
                }));
            } else if TYPES[t] != EventType::Execve || bit(7) {
                e.fd = Some(Box::new(Fd {
                    kind: Some(if bit(8) { FdKind::Directory } else { FdKind::File }),
                    name: Some(PATHS[path].into()),
                    num: bit(9).then_some(3),
                    open_read: Some(!bit(10)),
                    open_write: Some(bit(10)),
                    oldname: bit(11).then(|| "/tmp/old".into()),
                    ..Fd::default()
                }));
            }
            e
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

        /// Every rule's memoised result, with the memo filled by the other rules in either
        /// order, is its result computed from scratch; and the indexed, memoised
        /// `evaluate` returns what evaluating every candidate without index or memo does.
        #[test]
        fn memo_and_index_agree_with_plain_evaluation(ev in events()) {
            for matching in [RuleMatching::All, RuleMatching::First] {
                let set = default_and_falco(matching);
                let plain: Vec<bool> = set
                    .rules
                    .iter()
                    .map(|r| r.cond.eval_uncached(&EvalCtx::new(&ev)))
                    .collect();
                let forward = EvalCtx::new(&ev);
                for (r, want) in set.rules.iter().zip(&plain) {
                    prop_assert_eq!(r.cond.eval(&forward), *want, "{}", r.info.name);
                }
                let backward = EvalCtx::new(&ev);
                for (r, want) in set.rules.iter().zip(&plain).rev() {
                    prop_assert_eq!(r.cond.eval(&backward), *want, "{}", r.info.name);
                }
                prop_assert_eq!(names(set, &ev), reference(set, &ev));
            }
        }
    }
}

#[test]
fn ruleset_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<RuleSet>();
}
