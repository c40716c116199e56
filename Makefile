# Thin wrapper around CMake. `make run` and `make test` are the two set-up commands.
BUILD   ?= build
JOBS    ?= $(shell nproc)
SHARED  ?= $(abspath ../shared)
MODEL   ?=
PROMPT  ?= Once upon a time
N       ?= 200

.PHONY: all build run test clean deps

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

clean:
	rm -rf $(BUILD)
