# Container image of partnercenter_exporter.
#
# Build (version information is injected into the binary and the labels;
# `make docker` does this, with the VERSION file's version as the tag):
#
#   docker build -t partnercenter_exporter:"$(cat VERSION)" \
#     --build-arg VERSION="$(cat VERSION)" \
#     --build-arg REVISION="$(git rev-parse HEAD)" \
#     --build-arg BRANCH="$(git rev-parse --abbrev-ref HEAD)" \
#     --build-arg BUILD_DATE="$(date -u +%Y-%m-%dT%H:%M:%SZ)" .
#
# BUILD_DATE is RFC 3339, as the OCI "created" label requires.
#
# Run with a configuration file (read-only; mount the secret files it names
# the same way, at the paths the file uses):
#
#   docker run -p 10046:10046 \
#     -v "$PWD/partnercenter.yml:/etc/partnercenter_exporter/partnercenter.yml:ro" \
#     partnercenter_exporter
#
# Keep what the exporter knows of each batch across restarts (finished
# batches are then never read again) in a volume:
#
#   docker run -p 10046:10046 -v partnercenter-data:/var/lib/partnercenter_exporter \
#     -v "$PWD/partnercenter.yml:/etc/partnercenter_exporter/partnercenter.yml:ro" \
#     partnercenter_exporter --config.file=/etc/partnercenter_exporter/partnercenter.yml \
#     --storage.path=/var/lib/partnercenter_exporter
#
# Run the demo, which needs no configuration and no credentials:
#
#   docker run -p 10046:10046 partnercenter_exporter --demo
#
# dockerfile_test.go runs the go build line below with the same flags.

# Base images. The builder is the exact Go version of go.mod's go line
# (dockerfile_test.go checks it): a floating golang:1.26 may be an older
# patch release than go.mod asks for. Update both on a Go release or a
# distroless rebuild:
#
#   1. Set the golang tag to the new go line of go.mod.
#   2. Pin each base by digest, resolved from the registry:
#        docker buildx imagetools inspect golang:1.26.8 --format '{{json .Manifest.Digest}}'
#        docker buildx imagetools inspect gcr.io/distroless/static-debian12:nonroot --format '{{json .Manifest.Digest}}'
#      (or crane digest <image>) and write FROM <image>:<tag>@sha256:<digest>:
#      the tag documents, the digest (of the multi-arch index) decides.
#   3. make docker && docker run --rm partnercenter_exporter:$(cat VERSION) --version
#
# No digest is written here yet: they were not resolved where this was
# last edited, and a digest nobody checked is worse than a tag.
FROM golang:1.26.8 AS builder

ARG VERSION=unknown
ARG REVISION=unknown
ARG BRANCH=unknown
ARG BUILD_DATE=unknown

WORKDIR /src
# Modules first: this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# CGO_ENABLED=0 gives a static binary that runs on an image without libc.
# -trimpath keeps the build machine's paths out of the binary; -s -w drop
# the symbol table and DWARF data.
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w \
        -X github.com/prometheus/common/version.Version=${VERSION} \
        -X github.com/prometheus/common/version.Revision=${REVISION} \
        -X github.com/prometheus/common/version.Branch=${BRANCH} \
        -X github.com/prometheus/common/version.BuildUser=docker \
        -X github.com/prometheus/common/version.BuildDate=${BUILD_DATE}" \
      -o /out/partnercenter_exporter .
RUN mkdir -p /out/data

# Distroless static: CA certificates (for login.microsoftonline.com and
# the Partner Center API), tzdata and a non-root user; no shell, no
# package manager.
FROM gcr.io/distroless/static-debian12:nonroot

ARG VERSION=unknown
ARG REVISION=unknown
ARG BUILD_DATE=unknown

LABEL org.opencontainers.image.title="partnercenter_exporter" \
      org.opencontainers.image.description="Prometheus exporter for the status of Windows Autopilot device batches uploaded through Partner Center" \
      org.opencontainers.image.source="https://github.com/partnercenter-exporter/partnercenter_exporter" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${BUILD_DATE}"

COPY --from=builder /out/partnercenter_exporter /bin/partnercenter_exporter
# An empty directory owned by the nonroot user, for --storage.path: a
# volume mounted there starts with this owner, so the exporter can write.
COPY --from=builder --chown=65532:65532 /out/data /var/lib/partnercenter_exporter

# The nonroot user of the distroless image (uid and gid 65532), spelled out
# so that a change of base image cannot silently make it root.
USER 65532:65532
EXPOSE 10046
ENTRYPOINT ["/bin/partnercenter_exporter"]
# The documented configuration path: mount the file there, or replace
# these arguments (for example with --demo).
CMD ["--config.file=/etc/partnercenter_exporter/partnercenter.yml"]
