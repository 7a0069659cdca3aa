# syntax=docker/dockerfile:1
# Multi-stage build: a static (musl) infra-operator binary on a distroless, non-root base with no
# shell. The same binary runs both roles: `infra-operator controller` and `infra-operator server`.
FROM rust:1.95-bookworm AS build
RUN rustup target add x86_64-unknown-linux-musl && apt-get update && apt-get install -y --no-install-recommends musl-tools && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY tests ./tests
RUN cargo build --release --locked --target x86_64-unknown-linux-musl --bin infra-operator --bin infra

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/target/x86_64-unknown-linux-musl/release/infra-operator /usr/local/bin/infra-operator
COPY --from=build /src/target/x86_64-unknown-linux-musl/release/infra /usr/local/bin/infra
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/infra-operator"]
CMD ["server"]
