# svinit: build, demo and test. `make test` is what CI runs (.ci/run).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: build demo test bench

# A static, stripped, reproducible binary with the version stamped in.
build:
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o bin/svinit ./cmd/svinit
	@stat -c 'bin/svinit: %s bytes, static and stripped' bin/svinit

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
