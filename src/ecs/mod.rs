//! ECS: the task's metadata (task metadata endpoint v4) and cgroup naming.
