# Every target installs what it needs (tools/deps.sh) on a fresh Debian machine with Go,
# but data (npm).
GO      ?= go
export PATH := $(PATH):/usr/local/go/bin
BIN     := bin/hata

.PHONY: all deps build test demo figures data vet lint fmt-check

all: build

# deps: the Debian packages for cgo/Vulkan, lavapipe, glslc and the validation layer.
deps:
	@bash tools/deps.sh

# build: the command line, bin/hata.
build: deps
	$(GO) build -o $(BIN) ./cmd/hata

# test: everything CI checks: formatting, vet, fresh SPIR-V, and every test,
# the Vulkan ones on lavapipe with the validation layer turned into failures;
# then the kernels' tests against ref again in lavapipe's subgroups of 4 and
# 16 lanes instead of 8 (LP_NATIVE_VECTOR_WIDTH 128 and 512; gallivm goes no
# wider), since GPUs run subgroups of 4 to 128 lanes and the kernels must
# hold to ref at any of them. HATA_VK_SUBGROUP makes TestSubgroupSize fail
# where the width did not take effect. Lavapipe compiles a pipeline once
# into mesa's shader cache (~/.cache/mesa_shader_cache) and takes it from
# there after: on two cores the first run took 480 s with the cache empty
# (MESA_SHADER_CACHE_DIR a new directory), 133 s in the last CI run on record,
# and the 4-lane rerun, whose pipelines the 8-lane run does not share, 253 s
# (session 44). The limits leave room for an empty cache.
SG_TESTS   := TestSubgroupSize|TestCheckSubgroups|TestHATAKernels|TestSelectMatchesRef|TestDenseMatchesRef|TestQuestBoundsScores|TestFullSubgroups|TestReadBandwidth|TestGatherBandwidth
SG4_TESTS  := $(SG_TESTS)|TestSparseAcceptance|TestHATAOneKernelChunks
test: deps fmt-check vet shaders-check
	HATA_VK_VALIDATE=1 $(GO) test -timeout 15m ./...
	LP_NATIVE_VECTOR_WIDTH=128 HATA_VK_SUBGROUP=4 HATA_VK_VALIDATE=1 $(GO) test -timeout 9m -count=1 -run '$(SG4_TESTS)' ./vk
	LP_NATIVE_VECTOR_WIDTH=512 HATA_VK_SUBGROUP=16 HATA_VK_VALIDATE=1 $(GO) test -timeout 5m -count=1 -run '$(SG_TESTS)' ./vk

# demo: configs/quick.toml on the embedded synthetic data, on Vulkan if a device
# is present (lavapipe included), else on the pure-Go reference.
demo: build
	./$(BIN) run configs/quick.toml

# figures: every paper config and the small model's (long; meant for a GPU
# machine; the model configs need the training text of train/prepare_data.sh).
figures: build data
	for c in configs/fig*.toml configs/model_*.toml; do ./$(BIN) run "$$c" || exit 1; done

# data: the small model's training and held-out text (.data/, SHA-256 checked;
# needs npm and apt-get), built once.
data:
	@[ -f .data/train.txt ] || sh train/prepare_data.sh

# vet: go vet over every package.
vet: deps
	$(GO) vet ./...

# lint: staticcheck (pinned; fetched through the Go module proxy) with
# staticcheck.conf's checks. Not part of test.
lint: deps
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

# fmt-check: fail when gofmt would change a file, or cannot parse one.
fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')) || { echo "fmt-check: gofmt failed (above)"; exit 1; }; \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

# --- shaders (vk helper) ---
# shaders: compile every shaders/*.comp entry point to the committed
# shaders/*.spv (glslc, Vulkan 1.2 target, optimised) and validate each with
# spirv-val, so go:embed always carries SPIR-V that matches its GLSL.
GLSLC     ?= glslc
SPIRV_VAL ?= spirv-val
SHADER_COMP := $(wildcard shaders/*.comp)
SHADER_SPV  := $(SHADER_COMP:.comp=.spv)
SHADER_GLSL := $(wildcard shaders/*.glsl)

.PHONY: shaders shaders-check
shaders: $(SHADER_SPV)

shaders/%.spv: shaders/%.comp $(SHADER_GLSL) | deps
	$(GLSLC) --target-env=vulkan1.2 -O -o $@.tmp $<
	$(SPIRV_VAL) --target-env vulkan1.2 $@.tmp
	mv $@.tmp $@

# shaders-check: recompile every shader into a temporary directory and fail if
# any committed .spv differs from it, is missing, or has no .comp (CI runs it).
shaders-check: deps
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && fail=0 && \
	for c in $(SHADER_COMP); do \
		n=$$(basename $$c .comp); \
		$(GLSLC) --target-env=vulkan1.2 -O -o "$$tmp/$$n.spv" $$c || exit 1; \
		$(SPIRV_VAL) --target-env vulkan1.2 "$$tmp/$$n.spv" || exit 1; \
		if [ ! -f shaders/$$n.spv ]; then echo "shaders/$$n.spv: missing (run make shaders)"; fail=1; \
		elif ! cmp -s "$$tmp/$$n.spv" shaders/$$n.spv; then echo "shaders/$$n.spv: stale (run make shaders)"; fail=1; fi; \
	done; \
	for s in shaders/*.spv; do [ -f "$${s%.spv}.comp" ] || { echo "$$s: no $${s%.spv}.comp"; fail=1; }; done; \
	[ $$fail = 0 ] && echo "shaders-check: $(words $(SHADER_COMP)) shaders up to date"
# --- end shaders (vk helper) ---
