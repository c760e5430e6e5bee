# syntax=docker/dockerfile:1
#
# TaskSentry sidecar image: a release build of the `tasksentry` binary on a distroless base
# (glibc, libgcc and CA certificates for TLS to CloudWatch Logs; no shell, no package manager).
#
# Reproducibility: the build stage uses an exact Rust release on an exact Debian release, the
# same command CI uses (`cargo build --release --locked`, so Cargo.lock is authoritative and
# the build fails rather than resolving new versions), and no network step besides crate
# downloads pinned by Cargo.lock checksums. Distroless publishes no version tags, only rolling
# ones, so release builds pin both bases by digest through the build arguments:
#   docker buildx build \
#     --build-arg RUST_IMAGE=docker.io/library/rust:1.95.0-slim-bookworm@sha256:<digest> \
#     --build-arg RUNTIME_IMAGE=gcr.io/distroless/cc-debian12@sha256:<digest> .
# (`docker buildx imagetools inspect IMAGE` prints the digest to pin.)
#
# Build:  docker build -t tasksentry .
# Run:    as the sidecar of an ECS task with pidMode "task" (see task-definitions/ and
#         docs/platform-engineers.md); locally: docker run --rm --pid=host --cap-add SYS_PTRACE tasksentry

ARG RUST_IMAGE=docker.io/library/rust:1.95.0-slim-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:latest

FROM ${RUST_IMAGE} AS build
WORKDIR /src
ENV CARGO_TERM_COLOR=never \
    CARGO_INCREMENTAL=0
COPY . .
# The registry and target caches only speed up rebuilds; the result does not depend on them.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
    && install -D -m 0755 target/release/tasksentry /out/tasksentry

FROM ${RUNTIME_IMAGE} AS runtime
LABEL org.opencontainers.image.title="tasksentry" \
      org.opencontainers.image.description="Runtime security monitor sidecar for Amazon ECS tasks on AWS Fargate" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/tasksentry /tasksentry
# Root is required: reading other users' /proc/<pid>/{root,exe,fd,environ} needs uid 0 with
# CAP_SYS_PTRACE (the only capability Fargate lets a task add). The task definition drops every
# other capability and makes the root filesystem read-only.
USER 0:0
ENTRYPOINT ["/tasksentry", "run"]
