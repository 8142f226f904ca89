# framecast sender: captures a camera (or a test pattern) with OpenCV through
# gocv, so it is a cgo binary linked against Debian 12's OpenCV 4.6.
#
#   docker build -f deploy/sender.Dockerfile -t framecast/sender .
#
# Build context is the repository root. Plain Dockerfile syntax (no BuildKit
# cache mounts) so docker-compose 1.29's classic builder can build it too.

FROM golang:1.26-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libopencv-dev libopenh264-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=1 go build -trimpath -ldflags="-s -w" -o /out/sender ./cmd/sender
# For the build log: the OpenCV and OpenH264 libraries the binary really needs.
RUN readelf -d /out/sender | grep NEEDED

FROM debian:bookworm-slim
# Runtime libraries, one package per OpenCV library the binary names.
#
# gocv v0.32.0 asks pkg-config for all of opencv4 (56 libraries), but Debian's
# gcc links with --as-needed, so the binary keeps only the modules that gocv's
# own C++ code calls. Checked on Debian 12 with a program importing
# gocv.io/x/gocv (readelf -d): core, imgproc, imgcodecs, videoio, highgui,
# video, objdetect, calib3d, features2d, dnn, photo. That set is fixed by the
# gocv package itself, not by which functions the sender uses; importing
# gocv.io/x/gocv/contrib would add more (the check below would then fail).
# highgui drags in Qt 5 and videoio FFmpeg/GStreamer: large, but required.
# libopenh264-7 is OpenH264 2.3.1, the H.264 encoder of SENDER_CODEC=h264
# (internal/h264enc links it through cgo: docs/h264.md).
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates \
      libopenh264-7 \
      libopencv-core406 \
      libopencv-imgproc406 \
      libopencv-imgcodecs406 \
      libopencv-videoio406 \
      libopencv-highgui406 \
      libopencv-video406 \
      libopencv-objdetect406 \
      libopencv-calib3d406 \
      libopencv-features2d406 \
      libopencv-dnn406 \
      libopencv-photo406 \
 && rm -rf /var/lib/apt/lists/*
# Non-root; group "video" (gid 44) opens /dev/video* passed in with --device.
RUN useradd --system --uid 10001 --user-group --groups video \
      --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin sender
COPY --from=build /out/sender /usr/local/bin/sender
# Fail the build, not the first start, if a library is missing.
RUN if ldd /usr/local/bin/sender | grep 'not found'; then \
      echo 'sender: missing runtime libraries (see above)' >&2; exit 1; \
    fi
# By name only: "USER sender:sender" would drop the supplementary group video.
USER sender
ENTRYPOINT ["/usr/local/bin/sender"]
