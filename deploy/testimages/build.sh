#!/usr/bin/env bash
# Local stand-ins for the base images that framecast's Dockerfiles and
# docker-compose.yml name, made from Debian 12 packages only, for machines
# with a Docker engine but no container registry (the project's CI):
#
#   golang:1.26-bookworm                      bookworm + this machine's Go toolchain
#   debian:bookworm-slim                      a minimal bookworm (debootstrap minbase)
#   gcr.io/distroless/static-debian12:nonroot CA certificates, tzdata, users; no shell
#   redis:7                                   bookworm + Debian's redis-server
#   nginx:1.27                                bookworm + Debian's nginx (1.22!)
#
# The Dockerfiles and the compose file are then used unchanged: these images
# only replace what a registry would have served. Each carries the label
# org.framecast.testimage=<version>. An image that already exists is left
# alone: one built by an older version of this script is rebuilt, and one
# without the label (really pulled from a registry) is never touched.
#
# How: `debootstrap --variant=minbase bookworm` into a folder of the project's
# (deploy/testimages/.work, removed afterwards), `docker import` of it, then a
# small Dockerfile per stand-in on top. Packages come from the Debian mirror
# this machine's apt is configured with. Build containers reach it, and the Go
# module proxy, through Docker's default bridge (checked: docs/deployment.md);
# FRAMECAST_BUILD_NETWORK=host builds over the host's network instead.
#
# Needs: root (or sudo), docker, debootstrap, go (for GOROOT). Prints what it
# does; exits non-zero on the first failure.
#
#   deploy/testimages/build.sh          # make what is missing
#   deploy/testimages/build.sh --list   # print the stand-ins' names
#   deploy/testimages/build.sh --remove # remove the stand-ins this script made
set -euo pipefail

# Bump when a stand-in's recipe changes, so existing ones are rebuilt.
VERSION=1
LABEL=org.framecast.testimage
BASE=framecast-testimages/bookworm:base

GOLANG=golang:1.26-bookworm
SLIM=debian:bookworm-slim
DISTROLESS=gcr.io/distroless/static-debian12:nonroot
REDIS=redis:7
NGINX=nginx:1.27
ALL=("$GOLANG" "$SLIM" "$DISTROLESS" "$REDIS" "$NGINX")

here="$(cd "$(dirname "$0")" && pwd)"
work="$here/.work"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
# The classic builder, as docker-compose 1.29 uses: it never tries a
# registry for a FROM image that exists locally.
export DOCKER_BUILDKIT=0
network="${FRAMECAST_BUILD_NETWORK:-default}"
LOCAL_CA_DIR="${FRAMECAST_LOCAL_CA_DIR:-/usr/local/share/ca-certificates}"

log() { printf 'testimages: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# label IMAGE prints the image's $LABEL, "none" for an image without it,
# and nothing when the image does not exist.
label() {
	local l
	docker image inspect "$1" >/dev/null 2>&1 || return 0
	l="$(docker image inspect -f "{{ index .Config.Labels \"$LABEL\" }}" "$1")"
	case "$l" in "" | "<no value>") echo none ;; *) echo "$l" ;; esac
}

# wanted IMAGE: true when IMAGE must be (re)built.
wanted() {
	local l
	l="$(label "$1")"
	case "$l" in
	"") return 0 ;;
	"$VERSION") log "$1: present (stand-in v$VERSION), skipped"; return 1 ;;
	none) log "$1: present (not a stand-in), left alone"; return 1 ;;
	*) log "$1: stand-in v$l is outdated, rebuilding"; return 0 ;;
	esac
}

# build IMAGE: docker build from a Dockerfile on stdin, with the context
# given as a tar stream on fd 3 when there is one.
build_from() {
	local image="$1" dockerfile="$2" ctx
	ctx="$(mktemp -d "$work/ctx.XXXXXX")"
	printf '%s\n' "$dockerfile" >"$ctx/Dockerfile"
	shift 2
	# Extra context: pairs of (source dir, name in context).
	while [ $# -ge 2 ]; do
		cp -a "$1" "$ctx/$2"
		shift 2
	done
	log "$image: building"
	docker build --network "$network" --label "$LABEL=$VERSION" -t "$image" "$ctx" >"$ctx.log" 2>&1 ||
		{ tail -n 30 "$ctx.log" >&2; die "$image: docker build failed (log above)"; }
	rm -rf "$ctx" "$ctx.log"
	log "$image: built ($(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}'))"
}

# mirror SUITE-PATH prints the first URI of this machine's apt sources that
# ends in /SUITE-PATH (debian, debian-security).
mirror() {
	local files=() f
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] && files+=("$f")
	done
	[ ${#files[@]} -gt 0 ] || return 0
	grep -hoE '(^URIs:[[:space:]]*|^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?)[a-z]+://[^[:space:]]+' "${files[@]}" |
		grep -oE '[a-z]+://[^[:space:]]+' | sed 's:/*$::' | grep -E "/$1\$" | head -n1
}

make_base() {
	wanted "$BASE" || return 0
	command -v debootstrap >/dev/null || die "debootstrap not found (apt-get install debootstrap)"
	local debian security root
	debian="$(mirror debian)"
	security="$(mirror debian-security)"
	[ -n "$debian" ] || die "no Debian mirror in this machine's apt sources (/etc/apt/sources.list*)"
	root="$work/rootfs"
	$SUDO rm -rf "$root"
	mkdir -p "$work"
	log "$BASE: debootstrap --variant=minbase bookworm (about a minute)"
	$SUDO debootstrap --variant=minbase bookworm "$root" "$debian" >"$work/debootstrap.log" 2>&1 ||
		{ tail -n 20 "$work/debootstrap.log" >&2; die "debootstrap failed (log above)"; }
	# The same mirrors as this machine, in the deb822 form Debian's own images use.
	$SUDO rm -f "$root/etc/apt/sources.list"
	{
		printf 'Types: deb\nURIs: %s\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$debian"
		if [ -n "$security" ]; then
			printf '\nTypes: deb\nURIs: %s\nSuites: bookworm-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$security"
		fi
	} | $SUDO tee "$root/etc/apt/sources.list.d/debian.sources" >/dev/null
	# As Debian's slim images: no docs, man pages or translations from later installs.
	printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
		'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' \
		'path-exclude /usr/share/locale/*' 'path-include /usr/share/locale/locale.alias' |
		$SUDO tee "$root/etc/dpkg/dpkg.cfg.d/docker-slim" >/dev/null
	printf 'APT::Install-Recommends "false";\n' | $SUDO tee "$root/etc/apt/apt.conf.d/99no-recommends" >/dev/null
	$SUDO rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
		"$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/*
	# debootstrap copies the host's resolv.conf and hostname; docker sets both.
	$SUDO rm -f "$root/etc/resolv.conf" "$root/etc/hostname"
	log "$BASE: docker import"
	$SUDO tar -C "$root" --numeric-owner -c . |
		docker import -c "LABEL $LABEL=$VERSION" -c 'CMD ["bash"]' - "$BASE" >/dev/null
	$SUDO rm -rf "$root" "$work/debootstrap.log"
}

make_slim() {
	wanted "$SLIM" || return 0
	build_from "$SLIM" "FROM $BASE
CMD [\"bash\"]"
}

make_golang() {
	wanted "$GOLANG" || return 0
	local goroot
	goroot="$(go env GOROOT)"
	[ -x "$goroot/bin/go" ] || die "no Go toolchain at GOROOT $goroot"
	log "$GOLANG: with $("$goroot/bin/go" version | awk '{print $3}') from $goroot"
	# The CA certificates this machine's admin added (Debian's place for a
	# site's own CAs, such as a TLS-inspecting proxy's): without them `go
	# mod download` in a build fails with "x509: certificate signed by
	# unknown authority" where the host's own downloads succeed.
	local cas="$work/local-ca"
	rm -rf "$cas" && mkdir -p "$cas"
	if [ -d "$LOCAL_CA_DIR" ]; then
		find "$LOCAL_CA_DIR" -maxdepth 1 -name '*.crt' -exec cp {} "$cas/" \;
	fi
	log "$GOLANG: $(find "$cas" -name '*.crt' | wc -l) local CA certificate(s) from $LOCAL_CA_DIR"
	# As the official image: the C toolchain for cgo, git, pkg-config, CA
	# certificates; Go in /usr/local/go, GOPATH /go, GOTOOLCHAIN=local.
	build_from "$GOLANG" "FROM $BASE
COPY local-ca/ /usr/local/share/ca-certificates/
RUN apt-get update \\
 && apt-get install -y --no-install-recommends ca-certificates gcc g++ libc6-dev make pkg-config git \\
 && rm -rf /var/lib/apt/lists/* \\
 && update-ca-certificates
COPY go /usr/local/go
ENV GOLANG_VERSION=$("$goroot/bin/go" env GOVERSION | sed 's/^go//') GOTOOLCHAIN=local GOPATH=/go \\
    PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
RUN mkdir -p /go/src /go/bin && chmod -R 1777 /go && go version
WORKDIR /go
CMD [\"bash\"]" "$goroot" go "$cas" local-ca
	rm -rf "$cas"
}

make_distroless() {
	wanted "$DISTROLESS" || return 0
	# As distroless/static:nonroot: root, nobody and nonroot (65532) in
	# /etc/passwd and /etc/group, CA certificates, tzdata, /tmp; no shell,
	# no libc, no package manager. User 65532, workdir /home/nonroot.
	build_from "$DISTROLESS" "FROM $BASE AS files
RUN apt-get update \\
 && apt-get install -y --no-install-recommends ca-certificates tzdata \\
 && mkdir -p /out/etc/ssl/certs /out/usr/share /out/tmp /out/home/nonroot /out/root \\
 && cp /etc/ssl/certs/ca-certificates.crt /out/etc/ssl/certs/ \\
 && cp -a /usr/share/zoneinfo /out/usr/share/ \\
 && printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' 'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' 'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >/out/etc/passwd \\
 && printf '%s\n' 'root:x:0:' 'nobody:x:65534:' 'tty:x:5:' 'staff:x:50:' 'nonroot:x:65532:' >/out/etc/group \\
 && printf '%s\n' 'hosts: files dns' >/out/etc/nsswitch.conf \\
 && chmod 1777 /out/tmp && chmod 700 /out/root && chown 65532:65532 /out/home/nonroot
FROM scratch
COPY --from=files /out/ /
USER 65532
WORKDIR /home/nonroot
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"
}

make_redis() {
	wanted "$REDIS" || return 0
	# The official image builds Redis with protected mode off by default (it
	# runs on container networks without a password); Debian's binary has it
	# on, so the entrypoint adds --protected-mode no. Runs as user redis in
	# /data, as the official image does after its gosu step.
	build_from "$REDIS" "FROM $BASE
RUN apt-get update \\
 && apt-get install -y --no-install-recommends redis-server redis-tools \\
 && rm -rf /var/lib/apt/lists/* \\
 && mkdir -p /data && chown redis:redis /data \\
 && printf '%s\n' '#!/bin/sh' 'if [ \"\$1\" = redis-server ]; then shift; exec redis-server \"\$@\" --protected-mode no; fi' 'exec \"\$@\"' >/usr/local/bin/docker-entrypoint.sh \\
 && chmod 755 /usr/local/bin/docker-entrypoint.sh
USER redis
WORKDIR /data
VOLUME /data
EXPOSE 6379
ENTRYPOINT [\"docker-entrypoint.sh\"]
CMD [\"redis-server\"]"
}

make_nginx() {
	wanted "$NGINX" || return 0
	# Debian's nginx is 1.22: the project's config must not need newer.
	# As the official image: logs to the container's stdout/stderr, the
	# stock default server removed, `nginx -g 'daemon off;'`, SIGQUIT to stop.
	build_from "$NGINX" "FROM $BASE
RUN apt-get update \\
 && apt-get install -y --no-install-recommends nginx \\
 && rm -rf /var/lib/apt/lists/* /etc/nginx/sites-enabled/default \\
 && ln -sf /dev/stdout /var/log/nginx/access.log \\
 && ln -sf /dev/stderr /var/log/nginx/error.log \\
 && nginx -v
EXPOSE 80
STOPSIGNAL SIGQUIT
CMD [\"nginx\", \"-g\", \"daemon off;\"]"
}

case "${1:-}" in
--list)
	printf '%s\n' "${ALL[@]}" "$BASE"
	exit 0
	;;
--remove)
	for image in "${ALL[@]}" "$BASE"; do
		l="$(label "$image")"
		if [ -n "$l" ] && [ "$l" != none ]; then
			docker image rm "$image" >/dev/null && log "$image: removed"
		fi
	done
	exit 0
	;;
"") ;;
*) die "unknown argument $1 (want --list, --remove or none)" ;;
esac

command -v docker >/dev/null || die "docker not found"
docker info >/dev/null 2>&1 || die "no Docker engine answers (docker info failed)"
mkdir -p "$work"
start=$SECONDS
make_base
make_slim
make_golang
make_distroless
make_redis
make_nginx
rmdir "$work" 2>/dev/null || true
log "done in $((SECONDS - start)) s"
