//! Arbitrary bytes as the content of a process's /proc files (`stat`, `status`, `cmdline`,
//! `environ`, `cgroup`, `loginuid`, link targets): parsing never panics, and an event carrying
//! whatever was parsed serialises to exactly one JSON line that reads back to the same event,
//! so hostile content (newlines, invalid UTF-8, quotes, huge fields) cannot split or corrupt an
//! alert.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tasksentry::event::{Collector, Container, Event, EventType, Process};
use tasksentry::procfs::{
    parse_cgroup, parse_cmdline, parse_environ, parse_exe_link, parse_loginuid, parse_ns_link,
    parse_stat, parse_status,
};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let stat = parse_stat(data);
    let status = parse_status(&text);
    let cgroup = parse_cgroup(&text);
    let _ = parse_loginuid(&text);
    let _ = parse_ns_link(&text);
    let (exepath, deleted, memfd) = parse_exe_link(&text);
    let allow = vec!["LD_PRELOAD".to_owned(), "HOME".to_owned(), String::new()];
    let env = parse_environ(data, &allow);
    assert!(env.iter().all(|(k, _)| allow.contains(k)));
    for truncated in [false, true] {
        let cmdline = parse_cmdline(data, truncated);
        assert_eq!(cmdline.truncated, truncated);
        let body = data.strip_suffix(&[0]).unwrap_or(data);
        let parts = if data.is_empty() {
            0
        } else {
            body.split(|&b| b == 0).count()
        };
        assert_eq!(cmdline.argv0.is_some() as usize + cmdline.args.len(), parts);

        let mut event = Event::new(EventType::Execve, Collector::Procscan);
        event.proc = Some(Box::new(Process {
            pid: stat.as_ref().map_or(1, |s| s.pid),
            name: stat.as_ref().map(|s| s.comm.clone()).unwrap_or_default(),
            exe: cmdline.argv0.clone(),
            exepath: Some(exepath.clone()),
            exe_deleted: deleted,
            exe_from_memfd: memfd,
            args: cmdline.args.clone(),
            args_truncated: truncated,
            env: env.clone(),
            uid: status.uid,
            tracer_pid: status.tracer_pid,
            ..Process::default()
        }));
        event.container = Some(Box::new(Container {
            id: cgroup.container_id.clone().unwrap_or_default(),
            ..Container::default()
        }));
        let line = event.to_json_line();
        assert!(
            !line.contains('\n') && !line.contains('\r'),
            "one line: {line}"
        );
        let back: Event = serde_json::from_str(&line).expect("the line reads back");
        assert_eq!(back, event);
    }
});
