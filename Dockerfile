# arbiter, CPU image: `docker build -t arbiter:0.1.0 .` (not built in this repo's CI: no
# container registry is reachable from its machines). Multi-stage: the Rust toolchain and the
# wasm32-wasip2 target build the binary and its bundled plugins; the runtime image holds the
# binary, oneDNN (the fast CPU path) and nothing else, and runs as a non-root user.
FROM rust:1.95-trixie AS build
RUN rustup target add wasm32-wasip2
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p arbiter && cp target/release/arbiter /arbiter

FROM debian:trixie-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends libdnnl2 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin arbiter
COPY --from=build /arbiter /usr/local/bin/arbiter
USER 10001:10001
ENV ARBITER_CACHE_DIR=/cache/compiled
EXPOSE 8080
ENTRYPOINT ["arbiter"]
CMD ["serve", "--listen", "0.0.0.0:8080"]
