# syntax=docker/dockerfile:1

# Build stage: dependencies in their own cached layer, then the two binaries.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src

# Manifests and stub sources first: this layer (all of crates.io) is rebuilt only when
# Cargo.toml or Cargo.lock change, not when src/ does.
COPY Cargo.toml Cargo.lock ./
COPY client/Cargo.toml client/
RUN mkdir -p src client/src benches \
 && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
 && echo 'fn main() {}' > client/src/main.rs && touch client/src/lib.rs \
 && echo 'fn main() {}' > benches/store_pages.rs && echo 'fn main() {}' > benches/recovery.rs \
 && cargo build --release --locked --bins \
 && rm -rf src client/src

COPY src src
COPY client/src client/src
# The operations page, compiled into the server.
COPY web web
# Newer than the stubs' build artefacts, so cargo rebuilds our two crates only.
RUN touch src/main.rs src/lib.rs client/src/main.rs client/src/lib.rs \
 && cargo build --release --locked --bins

# Runtime stage: a slim Debian, no compiler, no shell tools needed by the app.
FROM debian:bookworm-slim
RUN groupadd --system --gid 10001 altair \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/altair --shell /usr/sbin/nologin altair \
 && mkdir -p /var/lib/altair \
 && chown altair:altair /var/lib/altair
COPY --from=build /src/target/release/altair-server /src/target/release/altair-client /usr/local/bin/
# The CA store that https webhooks are verified against (the slim image has none).
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
USER 10001:10001
WORKDIR /var/lib/altair
# The journal is ./data in the working directory: /var/lib/altair/data.
ENV ALTAIR_BIND=0.0.0.0:8338 \
    ALTAIR_CLIENT_DATA_DIR=/var/lib/altair/client \
    RUST_LOG=info
EXPOSE 8338
VOLUME ["/var/lib/altair"]
# The server checks itself: nothing beyond the image is needed (no curl).
HEALTHCHECK --interval=10s --timeout=4s --start-period=30s --retries=3 \
    CMD ["altair-server", "healthcheck"]
# The server by default; the tap client runs from the same image with
# `--entrypoint altair-client` (docker run) or `entrypoint: [altair-client]` (stack).
ENTRYPOINT ["altair-server"]
