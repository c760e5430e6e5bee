# syntax=docker/dockerfile:1
#
# TaskSentry sidecar image: the stripped `tasksentry` binary (Cargo profile `dist`: the release
# build without debug information) on a distroless base (glibc, libgcc and CA certificates for
# TLS to CloudWatch Logs; no shell, no package manager).
#
# Multi-architecture, without emulation: the build stage runs on the builder's own platform
# ($BUILDPLATFORM) and cross-compiles for the image's ($TARGETARCH: amd64 ->
# x86_64-unknown-linux-gnu, arm64 -> aarch64-unknown-linux-gnu) with Debian's cross gcc as the
# linker (and as the C compiler of the `ring` crate); only the runtime stage is per platform.
#   docker buildx build --platform linux/amd64,linux/arm64 -t REGISTRY/tasksentry:VERSION --push .
# (docs/platform-engineers.md, "Building the image").
#
# Reproducibility: the build stage uses an exact Rust release on an exact Debian release, exact
# cross-toolchain package versions, `--locked` (Cargo.lock is authoritative and the build fails
# rather than resolving new versions), and no network step besides crate downloads pinned by
# Cargo.lock checksums and the Rust standard library of the target. Distroless publishes no
# version tags, only rolling ones, so release builds pin both bases by digest:
#   docker buildx build \
#     --build-arg RUST_IMAGE=docker.io/library/rust:1.95.0-slim-bookworm@sha256:<digest> \
#     --build-arg RUNTIME_IMAGE=gcr.io/distroless/cc-debian12@sha256:<digest> .
# (`docker buildx imagetools inspect IMAGE` prints the digest to pin; use the multi-platform
# index digest so that every platform resolves.)
#
# Run:    as the sidecar of an ECS task with pidMode "task" (see task-definitions/ and
#         docs/platform-engineers.md); locally: docker run --rm --pid=host --cap-add SYS_PTRACE tasksentry
#         other subcommands: docker run --rm -v "$PWD:/work:ro" -w /work tasksentry rules test ...

ARG RUST_IMAGE=docker.io/library/rust:1.95.0-slim-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:latest

FROM --platform=$BUILDPLATFORM ${RUST_IMAGE} AS build
ARG TARGETARCH
ARG BUILDARCH
WORKDIR /src
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV CARGO_TERM_COLOR=never \
    CARGO_INCREMENTAL=0 \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
    AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar \
    CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER=x86_64-linux-gnu-gcc \
    CC_x86_64_unknown_linux_gnu=x86_64-linux-gnu-gcc \
    AR_x86_64_unknown_linux_gnu=x86_64-linux-gnu-ar
# The Rust target of the image's architecture, its standard library, and (when it is not the
# builder's own) Debian's cross gcc and C library for it.
RUN case "${TARGETARCH}" in \
      amd64) echo x86_64-unknown-linux-gnu > /rust-target ;; \
      arm64) echo aarch64-unknown-linux-gnu > /rust-target ;; \
      *) echo "unsupported TARGETARCH ${TARGETARCH} (amd64 or arm64)" >&2; exit 1 ;; \
    esac \
    && if [ "${TARGETARCH}" = arm64 ] && [ "${BUILDARCH}" != arm64 ]; then \
      apt-get update \
      && apt-get install -y --no-install-recommends gcc-aarch64-linux-gnu=4:12.2.0-3 libc6-dev-arm64-cross=2.36-8cross1 \
      && rm -rf /var/lib/apt/lists/*; \
    fi \
    && if [ "${TARGETARCH}" = amd64 ] && [ "${BUILDARCH}" != amd64 ]; then \
      apt-get update \
      && apt-get install -y --no-install-recommends gcc-x86-64-linux-gnu=4:12.2.0-3 libc6-dev-amd64-cross=2.36-8cross1 \
      && rm -rf /var/lib/apt/lists/*; \
    fi \
    && rustup target add "$(cat /rust-target)"
COPY . .
# The registry and target caches only speed up rebuilds; the result does not depend on them.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --profile dist --locked --target "$(cat /rust-target)" \
    && install -D -m 0755 "target/$(cat /rust-target)/dist/tasksentry" /out/tasksentry

FROM ${RUNTIME_IMAGE} AS runtime
LABEL org.opencontainers.image.title="tasksentry" \
      org.opencontainers.image.description="Runtime security monitor sidecar for Amazon ECS tasks on AWS Fargate" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/tasksentry /tasksentry
# Root is required: the monitor reads other users' /proc/<pid>/{root,exe,fd,environ} and the
# files of their containers. The task definitions keep only DAC_OVERRIDE and add SYS_PTRACE (the
# only capability Fargate lets a task add), and make the root filesystem read-only; see
# "Capabilities" in docs/platform-engineers.md for what each one is for.
USER 0:0
# The binary is the entrypoint and `run` (the sidecar) the default command, so that every other
# subcommand works as `docker run IMAGE rules test ...` (docs/service-owners.md).
ENTRYPOINT ["/tasksentry"]
CMD ["run"]
