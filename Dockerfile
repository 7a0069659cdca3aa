# syntax=docker/dockerfile:1
# Multi-stage build: statically linked binaries on a distroless, non-root base with no shell.
# The same infra-operator binary runs both roles: `infra-operator controller` and `infra-operator server`.
#
# linux/amd64 and linux/arm64 from one command (docs/releasing.md adds SBOM, provenance, signing):
#   docker buildx build --platform linux/amd64,linux/arm64 -t ghcr.io/infrahq/infra-operator:dev .
# The build stage runs on the builder's own platform and cross-compiles for buildx's TARGETARCH,
# so no CPU emulation is needed.
FROM --platform=$BUILDPLATFORM rust:1.95-bookworm AS build
ARG TARGETARCH
RUN set -eu; \
    case "${TARGETARCH}" in \
      amd64) triple=x86_64-unknown-linux-gnu; cross="gcc-x86-64-linux-gnu libc6-dev-amd64-cross" ;; \
      arm64) triple=aarch64-unknown-linux-gnu; cross="gcc-aarch64-linux-gnu libc6-dev-arm64-cross" ;; \
      *) echo "TARGETARCH=${TARGETARCH}: only amd64 and arm64 are built" >&2; exit 1 ;; \
    esac; \
    rustup target add "${triple}"; \
    if [ "$(rustc -vV | sed -n 's/^host: //p')" != "${triple}" ]; then \
      apt-get update && apt-get install -y --no-install-recommends ${cross} && rm -rf /var/lib/apt/lists/*; \
    fi
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# The dashboard's templates and its stylesheet and script, compiled into the binary.
COPY templates ./templates
COPY assets ./assets
COPY benches ./benches
COPY tests ./tests
COPY build ./build
# Reads TARGETARCH from the environment (ARG values are set for RUN).
RUN build/static-binaries.sh /out

FROM gcr.io/distroless/static-debian12:nonroot
# OCI annotations; docs/releasing.md passes the version, the commit and the build time.
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="infra-operator" \
      org.opencontainers.image.description="Infra: identity provider logins, SCIM provisioning and Kubernetes access; the operator (controller and server) and the infra CLI" \
      org.opencontainers.image.source="https://github.com/infrahq/infra-operator" \
      org.opencontainers.image.url="https://github.com/infrahq/infra-operator" \
      org.opencontainers.image.documentation="https://github.com/infrahq/infra-operator/blob/main/README.md" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="Infra" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"
COPY --from=build /out/infra-operator /usr/local/bin/infra-operator
COPY --from=build /out/infra /usr/local/bin/infra
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/infra-operator"]
CMD ["server"]
