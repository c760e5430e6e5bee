//! Configuration: command-line flags > `TASKSENTRY_*` environment variables > YAML file > defaults.
