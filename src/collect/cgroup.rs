//! Recognising a process's container from its `/proc/<pid>/cgroup` text.
//!
//! The formats handled (see `reference/aws-ecs-fargate.md` §2.2): cgroup v1 (one line per
//! hierarchy), v2 (one `0::` line) and hybrid (both); Fargate platform 1.4 two-part
//! `/ecs/<32 hex task id>/<32 hex task id>-<digits>` and older one-part `/ecs/<32 hex>-<digits>`;
//! ECS on EC2 and Fargate 1.3 `/ecs/<task>/<64 hex docker id>`; systemd scopes
//! (`docker-<64 hex>.scope`, `cri-containerd-<64 hex>.scope`, ...); EKS on Fargate, whose v1
//! lines carry a `kubepods/.../<64 hex>` suffix after the ECS segments. Under a cgroup
//! namespace paths can start with `../` components, so no fixed prefix is assumed: the
//! container id is the last path segment that looks like an id. When several lines name
//! different ids, the most specific one wins (the id found deepest in its path; on EKS that is
//! the kubepods container id rather than the pod-level ECS id), ties going to the first line.
//! A process whose cgroup is `/` or names no id is on the `host`.

/// The container id given to processes outside any recognised container.
pub const HOST_ID: &str = "host";

/// What the cgroup text says about the container of a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupInfo {
    /// The container id, `None` for a process outside a recognised container.
    pub container_id: Option<String>,
    /// The cgroup path the id was found in (or the `0::` path, or the first line's path).
    pub path: String,
}

/// Parses `/proc/<pid>/cgroup` text.
pub fn parse_cgroup(text: &str) -> CgroupInfo {
    let mut best: Option<(usize, String, &str)> = None;
    let mut unified: Option<&str> = None;
    let mut first: Option<&str> = None;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(hierarchy), Some(_controllers), Some(path)) =
            (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        first.get_or_insert(path);
        if hierarchy == "0" {
            unified.get_or_insert(path);
        }
        let segments: Vec<&str> = path
            .split('/')
            .filter(|s| !s.is_empty() && *s != "." && *s != "..")
            .collect();
        if let Some((depth, id)) = segments
            .iter()
            .enumerate()
            .rev()
            .find_map(|(i, s)| container_id_of(s).map(|id| (i, id)))
            && best.as_ref().is_none_or(|(d, _, _)| depth > *d)
        {
            best = Some((depth, id, path));
        }
    }
    match best {
        Some((_, id, path)) => CgroupInfo {
            container_id: Some(id),
            path: path.to_string(),
        },
        None => CgroupInfo {
            container_id: None,
            path: unified.or(first).unwrap_or("/").to_string(),
        },
    }
}

/// The container id a cgroup path segment names, if it names one.
pub fn container_id_of(segment: &str) -> Option<String> {
    // systemd scope units: `docker-<id>.scope`, `cri-containerd-<id>.scope`, `crio-<id>.scope`,
    // `libpod-<id>.scope`.
    let core = segment.strip_suffix(".scope").map_or(segment, |inner| {
        ["docker-", "cri-containerd-", "crio-", "libpod-"]
            .iter()
            .find_map(|prefix| inner.strip_prefix(prefix))
            .unwrap_or(inner)
    });
    if is_hex(core, 64) {
        return Some(core.to_string());
    }
    // Fargate: `<32 hex task id>-<digits>` (usually ten digits, sometimes nine).
    if let Some((task, digits)) = core.split_once('-')
        && is_hex(task, 32)
        && !digits.is_empty()
        && digits.len() <= 20
        && digits.bytes().all(|b| b.is_ascii_digit())
    {
        return Some(core.to_string());
    }
    None
}

fn is_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const TASK: &str = "8cd79a803caf4d2aa945152e934a5c00";
    const DOCKER: &str = "34dc0b5e626f2c5c4c5170e34b10e7654ce36f0fcd532739f4445baabea03376";

    fn id(text: &str) -> Option<String> {
        parse_cgroup(text).container_id
    }

    #[test]
    fn fargate_1_4_two_part_v1() {
        let text = format!(
            "11:hugetlb:/ecs/{TASK}/{TASK}-1053176469\n10:pids:/ecs/{TASK}/{TASK}-1053176469\n1:name=systemd:/ecs/{TASK}/{TASK}-1053176469\n"
        );
        let info = parse_cgroup(&text);
        assert_eq!(info.container_id, Some(format!("{TASK}-1053176469")));
        assert_eq!(info.path, format!("/ecs/{TASK}/{TASK}-1053176469"));
    }

    #[test]
    fn fargate_1_4_one_part_and_nine_digits() {
        assert_eq!(
            id(&format!("11:hugetlb:/ecs/{TASK}-105317646\n")),
            Some(format!("{TASK}-105317646"))
        );
    }

    #[test]
    fn fargate_1_3_and_ecs_ec2_docker_id() {
        assert_eq!(
            id(&format!(
                "11:hugetlb:/ecs/{TASK}/{DOCKER}\n4:memory:/ecs/{TASK}/{DOCKER}\n"
            )),
            Some(DOCKER.to_string())
        );
        // An ARN-style task segment before the docker id.
        assert_eq!(
            id(&format!(
                "9:perf_event:/ecs/arn:aws:ecs:us-east-1:123:task/{TASK}/{DOCKER}\n"
            )),
            Some(DOCKER.to_string())
        );
    }

    #[test]
    fn pure_v2_and_hybrid() {
        assert_eq!(
            id(&format!("0::/ecs/{TASK}/{TASK}-3057940393\n")),
            Some(format!("{TASK}-3057940393"))
        );
        let hybrid = format!(
            "12:memory:/ecs/{TASK}/{TASK}-3057940393\n1:name=systemd:/ecs/{TASK}/{TASK}-3057940393\n0::/ecs/{TASK}/{TASK}-3057940393\n"
        );
        assert_eq!(id(&hybrid), Some(format!("{TASK}-3057940393")));
    }

    #[test]
    fn eks_fargate_prefers_the_kubepods_container() {
        let text = format!(
            "11:hugetlb:/ecs/{TASK}/{TASK}-3057940393/kubepods/besteffort/pod2d6fd3e8-0a6f-4d29-9c6c-1bb4c2cc2e5d/{DOCKER}\n\
             1:name=systemd:/ecs/{TASK}/{TASK}-3057940393/kubepods/besteffort/pod2d6fd3e8-0a6f-4d29-9c6c-1bb4c2cc2e5d/{DOCKER}\n\
             0::/ecs/{TASK}/{TASK}-3057940393\n"
        );
        assert_eq!(id(&text), Some(DOCKER.to_string()));
    }

    #[test]
    fn cgroup_namespace_relative_paths() {
        assert_eq!(
            id(&format!("0::/../../ecs/{TASK}/{TASK}-1053176469\n")),
            Some(format!("{TASK}-1053176469"))
        );
        assert_eq!(id(&format!("0::/../{DOCKER}\n")), Some(DOCKER.to_string()));
    }

    #[test]
    fn systemd_scopes() {
        assert_eq!(
            id(&format!("0::/system.slice/docker-{DOCKER}.scope\n")),
            Some(DOCKER.to_string())
        );
        assert_eq!(
            id(&format!(
                "0::/kubepods.slice/kubepods-pod1.slice/cri-containerd-{DOCKER}.scope\n"
            )),
            Some(DOCKER.to_string())
        );
    }

    #[test]
    fn host_and_unrecognised() {
        // This machine's own cgroup: a 32-hex name that is not a container id form.
        let host = "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/53d04e6b24e0d82e71c2286a4996f1f3\n1:cpu:/\n0::/\n";
        let info = parse_cgroup(host);
        assert_eq!(info.container_id, None);
        assert_eq!(info.path, "/");
        assert_eq!(id("0::/\n"), None);
        assert_eq!(id("0::/user.slice/user-1000.slice/session-2.scope\n"), None);
        assert_eq!(id(""), None);
        assert_eq!(id("garbage\n\n::\n"), None);
        // Near misses.
        assert_eq!(id(&format!("0::/ecs/{TASK}-\n")), None);
        assert_eq!(id(&format!("0::/ecs/{TASK}-12a\n")), None);
        assert_eq!(id(&format!("0::/ecs/{}\n", &DOCKER[..63])), None);
    }
}
