# syntax=docker/dockerfile:1
# Multi-stage build: statically linked binaries on a distroless, non-root base with no shell.
# The same infra-operator binary runs both roles: `infra-operator controller` and `infra-operator server`.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY tests ./tests
COPY build ./build
RUN build/static-binaries.sh /out

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/infra-operator /usr/local/bin/infra-operator
COPY --from=build /out/infra /usr/local/bin/infra
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/infra-operator"]
CMD ["server"]
