# Multi-stage build: compile the release binary with the Rust toolchain, ship it alone on a
# slim base as a non-root user.
FROM rust:1-bookworm AS build
WORKDIR /src
# Manifests first so dependency builds are cached across source changes.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin shadowtap

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin shadowtap
COPY --from=build /src/target/release/shadowtap /usr/local/bin/shadowtap
# The examples, for reference; mount your own config at /etc/shadowtap/shadowtap.toml.
COPY config /etc/shadowtap/examples
USER 10001
EXPOSE 8080 9901
ENTRYPOINT ["/usr/local/bin/shadowtap"]
CMD ["run", "--config", "/etc/shadowtap/shadowtap.toml"]
