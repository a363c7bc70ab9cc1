# syntax=docker/dockerfile:1
# Build: a full Rust toolchain; run: a slim Debian with only the binary.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
# Compiled into the binary: workflow contracts, dashboard templates and assets.
COPY contracts ./contracts
COPY templates ./templates
COPY assets ./assets
COPY benches ./benches
COPY config.toml diesel.toml ./
RUN cargo build --release --locked --bin omninode-bridge

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data --create-home omninode
COPY --from=build /src/target/release/omninode-bridge /usr/local/bin/omninode-bridge
USER omninode
WORKDIR /data
# Embedded profile by default: SQLite in /data, in-process event bus. Set OMNINODE__DATABASE__URL /
# OMNINODE__KAFKA__BROKERS for the production profile.
ENV OMNINODE__HTTP__BIND=0.0.0.0:8057 \
    OMNINODE__DATABASE__URL=sqlite:///data/omninode.db
VOLUME ["/data"]
EXPOSE 8057
STOPSIGNAL SIGTERM
ENTRYPOINT ["omninode-bridge"]
CMD ["serve"]
