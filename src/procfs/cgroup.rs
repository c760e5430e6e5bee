//! Recognising a process's container from its `/proc/<pid>/cgroup` text: the one container-id
//! parser, for the collectors and for matching the ECS task metadata.
//!
//! The formats handled: cgroup v1 (one line per hierarchy), v2 (one `0::` line) and hybrid
//! (both); Fargate platform 1.4 two-part `/ecs/<32 hex task id>/<32 hex task id>-<digits>` and
//! older one-part `/ecs/<32 hex>-<digits>` (the number has ten digits, sometimes nine); ECS on
//! EC2 and Fargate 1.3 `/ecs/<task>/<64 hex docker id>`; systemd scopes (`docker-<64
//! hex>.scope`, `cri-containerd-<64 hex>.scope`, `crio-`, `libpod-`); EKS on Fargate, whose v1
//! lines carry a `kubepods/.../<64 hex>` suffix after the ECS segments and whose trailing `0::`
//! line stops at the ECS segments. Under a cgroup namespace paths can start with `../`
//! components, so no fixed prefix is assumed: a container id is a path segment that has one of
//! these forms. A process whose cgroup is `/` or names no id is on the `host`.
//!
//! Ids are lower-cased: the runtimes write them in lower case and the task metadata's
//! `DockerId` is lower case, so an id is one string however a path spells it.
//!
//! Two views of one parse:
//! - [`parse_cgroup`], the collectors' view: the most specific id, the one found deepest in its
//!   path (ties going to the first line). On EKS on Fargate that is the kubepods container id
//!   rather than the pod-level ECS id: the process's own container.
//! - [`ecs_container_id`], the task metadata's view: the same search with every path cut at
//!   `/kubepods`, which gives the id the ECS agent knows the container by (its `DockerId`).

/// The container id given to processes outside any recognised container.
pub(crate) const HOST_ID: &str = "host";

/// What the cgroup text says about the container of a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupInfo {
    /// The container id, `None` for a process outside a recognised container.
    pub container_id: Option<String>,
    /// The cgroup path the id was found in (or the `0::` path, or the first line's path).
    pub path: String,
}

/// Parses `/proc/<pid>/cgroup` text (the collectors' view, see the module documentation).
pub fn parse_cgroup(text: &str) -> CgroupInfo {
    parse(text, false)
}

/// The container id as the ECS task metadata names it (`DockerId`): the id found in the ECS
/// part of the cgroup paths, before any `/kubepods` tail. `None` outside a container.
pub fn ecs_container_id(text: &str) -> Option<String> {
    parse(text, true).container_id
}

fn parse(text: &str, cut_kubepods: bool) -> CgroupInfo {
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
        let searched = match cut_kubepods.then(|| path.find("/kubepods")).flatten() {
            Some(index) => &path[..index],
            None => path,
        };
        let segments: Vec<&str> = searched
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

/// The container id a cgroup path segment names (lower-cased), if it names one: 64 hex digits
/// or `<32 hex>-<digits>`, bare or as a runtime's systemd unit (`docker-<id>.scope`,
/// `cri-containerd-<id>.scope`, `crio-<id>.scope`, `libpod-<id>.scope`, and the same without
/// `.scope`).
pub(crate) fn container_id_of(segment: &str) -> Option<String> {
    let unit = segment.strip_suffix(".scope").unwrap_or(segment);
    let core = ["docker-", "cri-containerd-", "crio-", "libpod-"]
        .iter()
        .find_map(|prefix| unit.strip_prefix(prefix))
        .unwrap_or(unit);
    if is_hex(core, 64) {
        return Some(core.to_ascii_lowercase());
    }
    // Fargate: `<32 hex task id>-<digits>` (usually ten digits, sometimes nine).
    if let Some((task, digits)) = core.split_once('-')
        && is_hex(task, 32)
        && !digits.is_empty()
        && digits.len() <= 20
        && digits.bytes().all(|b| b.is_ascii_digit())
    {
        return Some(core.to_ascii_lowercase());
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

    /// The task metadata's view of one cgroup path (as a v2 line).
    fn path_id(path: &str) -> Option<String> {
        ecs_container_id(&format!("0::{path}\n"))
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

    // The task metadata's view (formerly the ECS module's own parser).

    #[test]
    fn recognises_fargate_two_part_and_one_part_paths() {
        let two_part = format!("/ecs/{TASK}/{TASK}-1053176469");
        assert_eq!(path_id(&two_part), Some(format!("{TASK}-1053176469")));
        let one_part = format!("/ecs/{TASK}-105317646");
        assert_eq!(path_id(&one_part), Some(format!("{TASK}-105317646")));
        // The task id segment alone is not a container id.
        assert_eq!(path_id(&format!("/ecs/{TASK}")), None);
    }

    #[test]
    fn recognises_docker_ids_on_ec2_and_systemd_scopes() {
        let docker =
            "34dc0b5e626f2c5c4c5170e34b10e765".to_owned() + "4ce2f0fcd051aa2b6ecf0e6c9d9a3a1b";
        let ec2 = format!("/ecs/{TASK}/{docker}");
        assert_eq!(path_id(&ec2), Some(docker.clone()));
        let scope = format!("/system.slice/docker-{}.scope", docker.to_ascii_uppercase());
        assert_eq!(path_id(&scope), Some(docker.clone()));
    }

    #[test]
    fn reads_proc_cgroup_files_in_v1_hybrid_and_v2_layouts() {
        let v1 = format!(
            "11:hugetlb:/ecs/{TASK}/{TASK}-1053176469\n4:memory:/ecs/{TASK}/{TASK}-1053176469\n1:name=systemd:/ecs/{TASK}/{TASK}-1053176469\n"
        );
        assert_eq!(ecs_container_id(&v1), Some(format!("{TASK}-1053176469")));
        let v2 = format!("0::/ecs/{TASK}/{TASK}-3057940393\n");
        assert_eq!(ecs_container_id(&v2), Some(format!("{TASK}-3057940393")));
        let eks = format!(
            "4:memory:/ecs/{TASK}/{TASK}-3057940393/kubepods/burstable/pod1/{}\n0::/ecs/{TASK}/{TASK}-3057940393\n",
            "a".repeat(64)
        );
        assert_eq!(ecs_container_id(&eks), Some(format!("{TASK}-3057940393")));
        let relative = format!("0::/../{TASK}-77\n");
        assert_eq!(ecs_container_id(&relative), Some(format!("{TASK}-77")));
    }

    #[test]
    fn processes_outside_containers_have_no_id() {
        for contents in [
            "0::/\n",
            "0::/init.scope\n",
            "1:name=systemd:/user.slice\n",
            "",
            "garbage",
        ] {
            assert_eq!(ecs_container_id(contents), None, "{contents:?}");
        }
        for segment in [
            "8cd79a803caf4d2aa945152e934a5c0-1",
            "8cd79a803caf4d2aa945152e934a5c00-",
            "8cd79a803caf4d2aa945152e934a5c00-12a",
            "zcd79a803caf4d2aa945152e934a5c00-1",
        ] {
            assert_eq!(container_id_of(segment), None, "{segment}");
        }
    }

    #[test]
    fn both_views_agree_outside_eks_and_ids_are_lower_case() {
        for text in [
            format!("11:hugetlb:/ecs/{TASK}/{TASK}-1053176469\n0::/ecs/{TASK}/{TASK}-1053176469\n"),
            format!("4:memory:/ecs/{TASK}/{DOCKER}\n"),
            format!("0::/system.slice/docker-{DOCKER}.scope\n"),
            "0::/\n".to_string(),
        ] {
            assert_eq!(parse_cgroup(&text).container_id, ecs_container_id(&text));
        }
        let upper = format!(
            "0::/ecs/{}/{}-1\n",
            TASK.to_uppercase(),
            TASK.to_uppercase()
        );
        assert_eq!(id(&upper), Some(format!("{TASK}-1")));
    }
}
