//! Container ids from cgroup paths, in the forms ECS uses.
//!
//! On Fargate PV 1.4.0+ a container's cgroup path ends in `<32-hex task id>-<digits>` (either as
//! `/ecs/<task id>/<task id>-<digits>` or the older one-part `/ecs/<task id>-<digits>`); that last
//! segment is the container's `DockerId` in the task metadata. On ECS over EC2 (and Fargate
//! PV 1.3) it is the 64-hex Docker id, sometimes wrapped by systemd as `docker-<id>.scope`. Paths
//! may be relative to the reader's cgroup namespace (`../` components), so only segments are
//! inspected, never a fixed prefix. EKS-on-Fargate appends `/kubepods/...`; that tail is cut.

/// Which form a container id has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerIdKind {
    /// Fargate PV 1.4.0+: `<32 hex>-<digits>`.
    Fargate,
    /// Docker: 64 hex digits.
    Docker,
}

/// Classifies one path segment as a container id, returning the id itself (without a systemd
/// `docker-`/`.scope` wrapper, lower-cased) and its form.
pub fn container_id_from_segment(segment: &str) -> Option<(String, ContainerIdKind)> {
    let segment = segment
        .strip_prefix("docker-")
        .or_else(|| segment.strip_prefix("cri-containerd-"))
        .unwrap_or(segment);
    let segment = segment.strip_suffix(".scope").unwrap_or(segment);
    let is_hex = |text: &str| text.bytes().all(|b| b.is_ascii_hexdigit());
    if segment.len() == 64 && is_hex(segment) {
        return Some((segment.to_ascii_lowercase(), ContainerIdKind::Docker));
    }
    let (task, digits) = segment.split_once('-')?;
    if task.len() == 32
        && is_hex(task)
        && !digits.is_empty()
        && digits.len() <= 20
        && digits.bytes().all(|b| b.is_ascii_digit())
    {
        return Some((segment.to_ascii_lowercase(), ContainerIdKind::Fargate));
    }
    None
}

/// The container id in one cgroup path: the last segment in a recognised form, ignoring any
/// `/kubepods` tail.
pub fn container_id_from_cgroup_path(path: &str) -> Option<String> {
    let path = match path.find("/kubepods") {
        Some(index) => &path[..index],
        None => path,
    };
    path.rsplit('/')
        .find_map(container_id_from_segment)
        .map(|(id, _)| id)
}

/// The container id in the text of a `/proc/<pid>/cgroup` file: the first line (v1 controller or
/// v2 `0::`) whose path carries one. A process outside any container (`0::/`, `/init.scope`)
/// gives `None`.
pub fn container_id_from_proc_cgroup(contents: &str) -> Option<String> {
    contents.lines().find_map(|line| {
        let mut fields = line.splitn(3, ':');
        let _hierarchy = fields.next()?;
        let _controllers = fields.next()?;
        container_id_from_cgroup_path(fields.next()?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TASK: &str = "8cd79a803caf4d2aa945152e934a5c00";

    #[test]
    fn recognises_fargate_two_part_and_one_part_paths() {
        let two_part = format!("/ecs/{TASK}/{TASK}-1053176469");
        assert_eq!(
            container_id_from_cgroup_path(&two_part),
            Some(format!("{TASK}-1053176469"))
        );
        let one_part = format!("/ecs/{TASK}-105317646");
        assert_eq!(
            container_id_from_cgroup_path(&one_part),
            Some(format!("{TASK}-105317646"))
        );
        // The task id segment alone is not a container id.
        assert_eq!(container_id_from_cgroup_path(&format!("/ecs/{TASK}")), None);
    }

    #[test]
    fn recognises_docker_ids_on_ec2_and_systemd_scopes() {
        let docker =
            "34dc0b5e626f2c5c4c5170e34b10e765".to_owned() + "4ce2f0fcd051aa2b6ecf0e6c9d9a3a1b";
        let ec2 = format!("/ecs/{TASK}/{docker}");
        assert_eq!(container_id_from_cgroup_path(&ec2), Some(docker.clone()));
        let scope = format!("/system.slice/docker-{}.scope", docker.to_ascii_uppercase());
        assert_eq!(container_id_from_cgroup_path(&scope), Some(docker.clone()));
    }

    #[test]
    fn reads_proc_cgroup_files_in_v1_hybrid_and_v2_layouts() {
        let v1 = format!(
            "11:hugetlb:/ecs/{TASK}/{TASK}-1053176469\n4:memory:/ecs/{TASK}/{TASK}-1053176469\n1:name=systemd:/ecs/{TASK}/{TASK}-1053176469\n"
        );
        assert_eq!(
            container_id_from_proc_cgroup(&v1),
            Some(format!("{TASK}-1053176469"))
        );
        let v2 = format!("0::/ecs/{TASK}/{TASK}-3057940393\n");
        assert_eq!(
            container_id_from_proc_cgroup(&v2),
            Some(format!("{TASK}-3057940393"))
        );
        let eks = format!(
            "4:memory:/ecs/{TASK}/{TASK}-3057940393/kubepods/burstable/pod1/{}\n0::/ecs/{TASK}/{TASK}-3057940393\n",
            "a".repeat(64)
        );
        assert_eq!(
            container_id_from_proc_cgroup(&eks),
            Some(format!("{TASK}-3057940393"))
        );
        let relative = format!("0::/../{TASK}-77\n");
        assert_eq!(
            container_id_from_proc_cgroup(&relative),
            Some(format!("{TASK}-77"))
        );
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
            assert_eq!(
                container_id_from_proc_cgroup(contents),
                None,
                "{contents:?}"
            );
        }
        for segment in [
            "8cd79a803caf4d2aa945152e934a5c0-1",
            "8cd79a803caf4d2aa945152e934a5c00-",
            "8cd79a803caf4d2aa945152e934a5c00-12a",
            "zcd79a803caf4d2aa945152e934a5c00-1",
        ] {
            assert_eq!(container_id_from_segment(segment), None, "{segment}");
        }
    }
}
