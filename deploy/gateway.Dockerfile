# framecast gateway: a static Go binary on distroless (no shell, no libc).
#
#   docker build -f deploy/gateway.Dockerfile -t framecast/gateway .
#
# Build context is the repository root. Plain Dockerfile syntax (no BuildKit
# cache mounts) so docker-compose 1.29's classic builder can build it too.

FROM golang:1.26-bookworm AS build
WORKDIR /src
# Modules first: this layer is reused until go.mod/go.sum change.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/gateway ./cmd/gateway
# Where `gateway token -out` writes the demo sender's token in compose (the
# `tokens` volume), and where recorders keep footage (the `recordings`
# volume). Both stay empty: Docker fills a fresh named volume from the
# image's folder when a container first mounts it, and several containers
# created at once raced making the same subfolders (`up` failed with
# "mkdir .../objects: file exists": moby/moby#43068, open). The recorders
# make the store's folders; replicas mounting it read-only open it as it is
# (store.NewDir).
# Distroless has no shell to mkdir in the final stage.
RUN mkdir -p /out/run/framecast /out/recordings

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/gateway /gateway
# Owned by the nonroot user (65532), mode 0755: a fresh named volume mounted
# here takes this ownership, so the token service can write to it and the
# sender's user can read it.
COPY --from=build --chown=65532:65532 /out/run/framecast /run/framecast
COPY --from=build --chown=65532:65532 /out/recordings /recordings
USER nonroot:nonroot
EXPOSE 8000
# `gateway healthcheck` asks the running gateway's /healthz and exits 0 or 1:
# distroless has no curl or wget.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 CMD ["/gateway", "healthcheck"]
ENTRYPOINT ["/gateway"]
