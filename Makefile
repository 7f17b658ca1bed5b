# Every target installs what it needs (tools/deps.sh) on a fresh Debian machine with Go.
GO      ?= go
export PATH := $(PATH):/usr/local/go/bin
BIN     := bin/hata

.PHONY: all deps build test demo figures vet fmt-check

all: build

# deps: the Debian packages for cgo/Vulkan, lavapipe, glslc and the validation layer.
deps:
	@bash tools/deps.sh

# build: the command line, bin/hata.
build: deps
	$(GO) build -o $(BIN) ./cmd/hata

# test: everything CI checks: formatting, vet, fresh SPIR-V, and every test,
# the Vulkan ones on lavapipe with the validation layer turned into failures.
test: deps fmt-check vet shaders-check
	HATA_VK_VALIDATE=1 $(GO) test -timeout 9m ./...

# demo: configs/quick.toml on the embedded synthetic data, on Vulkan if a device
# is present (lavapipe included), else on the pure-Go reference.
demo: build
	./$(BIN) run configs/quick.toml

# figures: every paper config (long; meant for a GPU machine).
figures: build
	for c in configs/fig*.toml configs/table*.toml; do [ -f "$$c" ] && ./$(BIN) run "$$c" || exit 1; done

# vet: go vet over every package.
vet:
	$(GO) vet ./...

# fmt-check: fail when gofmt would change a file.
fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
