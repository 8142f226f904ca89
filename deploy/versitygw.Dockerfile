# versitygw (github.com/versity/versitygw, Apache-2.0): an S3 server over a
# folder, for trying framecast's S3 store in compose (deploy/compose-s3.yml)
# where no S3 is at hand. A static Go binary on distroless, built from the
# module proxy like the gateway (no registry image needed).
#
#   docker build -f deploy/versitygw.Dockerfile -t framecast/versitygw deploy

FROM golang:1.26-bookworm AS build
RUN CGO_ENABLED=0 GOBIN=/out go install -trimpath -ldflags="-s -w" github.com/versity/versitygw/cmd/versitygw@v1.8.0
# The bucket the recordings go to: versitygw serves each folder of its root
# as a bucket. Owned by the nonroot user, so a fresh volume mounted on /data
# takes that ownership.
RUN mkdir -p /out/data/recordings

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/versitygw /versitygw
COPY --from=build --chown=65532:65532 /out/data /data
USER nonroot:nonroot
EXPOSE 7070
ENTRYPOINT ["/versitygw"]
