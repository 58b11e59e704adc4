# syntax=docker/dockerfile:1
# flowproof's worker (the entrypoint) and starter as static binaries on a
# minimal base, run as a non-root user:
#   docker build -t flowproof:dev .
# The same image without a container engine: make image (deploy/cluster),
# whose tests run the binaries taken out of it and check that this file
# builds them the same way. Kubernetes manifests: deploy/k8s.
ARG GO_VERSION=1.26.8

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build
ARG TARGETARCH
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
# .git comes along (see .dockerignore) so that the binaries carry the
# commit they were built from, as `worker -version` prints it.
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=linux GOARCH=$TARGETARCH \
    go build -trimpath -buildvcs=auto -ldflags='-s -w' -o /out/ ./worker ./starter

# Distroless' static base: CA certificates, /etc/passwd with the user
# nonroot (65532), /tmp; no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/worker /out/starter /usr/local/bin/
ENV HOME=/home/nonroot \
    FLOWPROOF_WORKER_METRICS_ADDR=:9464
EXPOSE 9464
USER 65532:65532
WORKDIR /home/nonroot
ENTRYPOINT ["/usr/local/bin/worker"]
