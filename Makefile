# Thin wrapper around CMake. `make run` and `make test` are the two set-up commands.
BUILD   ?= build
JOBS    ?= $(shell nproc)
SHARED  ?= $(abspath ../shared)
MODEL   ?=
PROMPT  ?= Once upon a time
N       ?= 200
FUZZ_SECONDS ?= 60

.PHONY: all build run test bench clean deps fuzz

all: build

deps:
	@bash scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# Builds, converts the default model (stories260K from ../shared) if needed, and tells a story.
run: build
	@bash scripts/run-default.sh "$(BUILD)/quill" "$(SHARED)" "$(MODEL)" "$(PROMPT)" "$(N)"

test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# Speed on synthetic weights at TinyLlama-1.1B's shapes (labelled synthetic), 2 threads; see BENCHMARKS.md.
bench: build
	@$(BUILD)/quill bench --synthetic tinyllama-1.1b --type q4_0,q8_0,f16 -p 512 -n 128 -t 2 -r 3

# libFuzzer targets (tests/fuzz) built with clang + ASan/UBSan in build-fuzz/, seeded from ../shared, each run for
# FUZZ_SECONDS after replaying tests/fuzz/regressions/; fails on any crash. See README.md "Fuzzing".
fuzz: deps
	@bash scripts/fuzz.sh $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD)
