# Multi-stage build: compile the release binary with the Rust toolchain, ship it alone on a
# slim base as a non-root user.
FROM rust:1-bookworm AS build
WORKDIR /src

# Dependencies first, against placeholder sources: this layer depends only on the manifests
# and build.rs, so editing src/ reuses the compiled dependencies from the cache.
COPY Cargo.toml Cargo.lock build.rs ./
RUN mkdir -p src benches \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && echo 'fn main() {}' > benches/json_diff.rs \
    && cargo build --release --locked --bin shadowtap \
    && rm -rf src benches

# Then the real sources. COPY keeps their (older) modification times, which cargo would take
# for "unchanged since the placeholder build": touch them so the crate itself is rebuilt.
COPY src ./src
COPY benches ./benches
# The commit for shadowtap_build_info (a build context has no .git):
#   docker build --build-arg SHADOWTAP_GIT_COMMIT=$(git rev-parse --short=12 HEAD) -t shadowtap .
ARG SHADOWTAP_GIT_COMMIT=unknown
# Line tables (profile.release keeps them for profiling on the build machine) are most of the
# binary's size; --strip-debug drops them and keeps the symbols, so backtraces and profilers
# still name functions.
RUN find src benches -name '*.rs' -exec touch {} + \
    && cargo build --release --locked --bin shadowtap \
    && strip --strip-debug target/release/shadowtap

FROM debian:bookworm-slim
# A fixed numeric user and group, so Kubernetes' runAsNonRoot can verify it without a passwd
# lookup (deploy/kubernetes/ runs it as 10001:10001).
RUN groupadd --system --gid 10001 shadowtap \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin shadowtap
COPY --from=build /src/target/release/shadowtap /usr/local/bin/shadowtap
# The examples, for reference; mount your own config at /etc/shadowtap/shadowtap.toml
# (config/docker.toml is a starting point: every port on 0.0.0.0).
COPY config /etc/shadowtap/examples
# Healthy while GET /readyz on the admin port answers 200. The image has no curl or wget:
# the script speaks HTTP through bash's /dev/tcp. An admin port other than 9901:
#   docker run -e SHADOWTAP_HEALTHCHECK_ADDRESS=127.0.0.1:9902 ...
COPY deploy/docker/healthcheck.sh /usr/local/bin/shadowtap-healthcheck
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["bash", "/usr/local/bin/shadowtap-healthcheck"]
# Nothing is written at run time (no state, no temporary files; only a configured
# compare.diff_log), so the container runs with --read-only as it is.
USER 10001:10001
EXPOSE 8080 9901
ENTRYPOINT ["/usr/local/bin/shadowtap"]
CMD ["run", "--config", "/etc/shadowtap/shadowtap.toml"]
