# syntax=docker/dockerfile:1
# Image of the Sluice loadtester (webhook gates and load generator).
# Build from the repository root: docker build -f build/loadtester.Dockerfile -t IMAGE .
# Without a container engine, `make images` builds an equivalent image from the static
# binary, reproducibly, as an OCI archive (docs/images.md).
ARG GO_VERSION=1.25

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
ARG TARGETOS TARGETARCH
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY controllers/ controllers/
COPY internal/ internal/
COPY pkg/ pkg/
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags="-s -w" -o /out/loadtester ./cmd/loadtester

FROM gcr.io/distroless/static:nonroot
LABEL org.opencontainers.image.source="https://github.com/sluice-dev/sluice"
COPY --from=build /out/loadtester /loadtester
EXPOSE 8080
USER 65532:65532
ENTRYPOINT ["/loadtester"]
