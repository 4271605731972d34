# Castor: `make run` serves the default model, `make test` runs everything CI runs.
BUILD ?= build
JOBS ?= $(shell nproc)
MODEL ?= $(firstword $(CASTOR_MODEL) $(wildcard ../shared/models/stories260K.gguf models/stories260K.gguf))
GEN := $(shell command -v ninja >/dev/null 2>&1 && echo "-G Ninja")

PREFIX ?= /usr/local
.PHONY: all build deps run test asan clean bench fuzz install test-arm64

all: build

deps:
	@./scripts/install-deps.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) $(GEN) -DCMAKE_BUILD_TYPE=Release

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

asan: deps
	cmake -S . -B build-asan $(GEN) -DCMAKE_BUILD_TYPE=Debug -DCST_SANITIZE=ON -DCMAKE_C_FLAGS=-O1
	cmake --build build-asan -j $(JOBS)

run: build
	@test -n "$(MODEL)" || { echo "no model: set CASTOR_MODEL=path/to/model.gguf"; exit 1; }
	./$(BUILD)/castor serve -m $(MODEL) --host 127.0.0.1 --port 8080 --no-auth

# `make install PREFIX=$$HOME/.local` puts castor in $(PREFIX)/bin
install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

test: build asan
	./scripts/test.sh

# the engine's suites cross-compiled for aarch64, run under qemu at every ARM ISA level
test-arm64: deps
	./scripts/test-arm64.sh

clean:
	rm -rf build build-asan build-fuzz build-arm64
