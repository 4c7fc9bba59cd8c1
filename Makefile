# svinit: build, demo and test. `make test` is what CI runs (.ci/run).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: build release image demo test bench

# Static, stripped, reproducible binaries with the version stamped in: svinit, and beside it
# svinit-net, which makes its network calls (the two ship together).
build:
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o bin/ ./cmd/svinit ./cmd/svinit-net
	@stat -c '%n: %s bytes, static and stripped' bin/svinit bin/svinit-net

# dist/: the release of the commit checked out, for every architecture: binaries named by
# Docker's TARGETARCH+TARGETVARIANT, an SBOM of each, a .deb each, SHA256SUMS (checked).
release:
	scripts/release

# The image to COPY --from (Dockerfile.release): FROM scratch, only svinit and svinit-net of
# dist/ (make release), checked against dist/SHA256SUMS, for the engine's architecture. Tagged
# $(IMAGE):$(VERSION) and $(IMAGE), the name a product's `COPY --from=svinit` finds.
IMAGE ?= svinit
image:
	cd dist && sha256sum --quiet -c --ignore-missing SHA256SUMS
	arch=$$(docker version -f '{{.Server.Arch}}') && \
		docker build -f Dockerfile.release --build-arg TARGETARCH=$$arch \
			--build-arg TARGETVARIANT=$$([ $$arch = arm ] && echo v7) -t $(IMAGE):$(VERSION) -t $(IMAGE) dist/
	@docker run --rm $(IMAGE):$(VERSION) --version | awk -v v='$(VERSION)' '{ for (i = 1; i <= NF; i++) f = f || $$i "" == v "" } END { exit !f }' || \
		{ echo 'dist/ holds another version than $(VERSION): run make release' >&2; exit 1; }

# svinit running a real program: a shell that leaves an orphan behind and exits 3.
demo: build
	bin/svinit --log-format console -- sh -c 'echo "child $$$$ running; leaving an orphan"; sleep 0.3 & exit 3'; \
		echo "svinit exited with $$? (the child's status)"

# The whole test suite; installs the Debian packages it needs when they are missing.
test:
	scripts/test

# Figures side by side with tini, dumb-init and catatonit (installs them when missing).
bench:
	bench/run
