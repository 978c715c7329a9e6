# Shoal build. `make` builds build/shoald and build/shoal; `make test` runs
# every test (unit then end-to-end); `make bench` runs the benchmarks;
# `make demo` starts a local cluster with an example service.
# SANITIZE=1 builds with ASan+UBSan (into build/san), WERROR=1 adds -Werror.

CC ?= cc
SANITIZE ?= 0
WERROR ?= 0

ifeq ($(SANITIZE),1)
BUILD ?= build/san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
BUILD ?= build
SANFLAGS :=
endif

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 \
        -Wimplicit-fallthrough -Wvla
# Error messages go into fixed 256-byte buffers and are cut on purpose (error
# paths do not allocate), so gcc's guesses at truncation are noise.
WARN += -Wno-format-truncation
ifeq ($(WERROR),1)
WARN += -Werror
endif

CFLAGS ?= -O2 -g
CFLAGS += -std=gnu17 $(WARN) $(SANFLAGS) -iquote . -D_GNU_SOURCE -MMD -MP
LDFLAGS += $(SANFLAGS)
# shoald links no libcurl (see common/httpc.c); the CLI does.
LIBS := -lraft -luv -ljansson -lhttp_parser -lm
CTL_LIBS := -ljansson -lcurl

COMMON_SRC := $(wildcard common/*.c)
DAEMON_SRC := $(wildcard api/*.c raft/*.c scheduler/*.c) $(filter-out agent/main.c,$(wildcard agent/*.c))
CTL_SRC    := $(wildcard ctl/*.c)
UNIT_SRC   := $(wildcard tests/unit/test_*.c)
BENCH_SRC  := $(wildcard bench/*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

SHOALD := $(BUILD)/shoald
SHOAL  := $(BUILD)/shoal
MONITOR := $(BUILD)/shoal-monitor
IMAGE   := $(BUILD)/shoal-image
UNIT_BINS  := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
BENCH_BINS := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))

# Keep intermediate objects (make would delete them and print it after the
# test summary line).
.SECONDARY:

.PHONY: all deps test unit e2e bench demo demo-stop format format-check clean
all: $(SHOALD) $(SHOAL) $(MONITOR) $(IMAGE)

deps:
	@sh scripts/deps.sh

$(BUILD)/.deps: scripts/deps.sh
	@mkdir -p $(@D)
	@sh scripts/deps.sh
	@touch $@

$(BUILD)/obj/%.o: %.c | $(BUILD)/.deps
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c $< -o $@

$(SHOALD): $(call obj,agent/main.c $(DAEMON_SRC) $(COMMON_SRC))
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(SHOAL): $(call obj,$(CTL_SRC) $(COMMON_SRC))
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS) $(CTL_LIBS)

# The per-task monitor: plain libc, static (ASan cannot link statically).
$(MONITOR): $(call obj,$(wildcard agent/monitor/*.c))
	$(CC) $(LDFLAGS) $(if $(filter 0,$(SANITIZE)),-static) -o $@ $^

# The image store and registry client: shoald spawns it per pull, so libcurl,
# libarchive and hostile layers stay out of the daemon.
$(IMAGE): $(call obj,$(wildcard agent/image/*.c) common/util.c)
	$(CC) $(LDFLAGS) -o $@ $^ -lcurl -larchive -ljansson -lcrypto

$(BUILD)/tests/%: $(call obj,tests/unit/%.c) $(call obj,$(DAEMON_SRC) $(COMMON_SRC))
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS) -lcmocka

$(BUILD)/bench/%: $(call obj,bench/%.c) $(call obj,$(DAEMON_SRC) $(COMMON_SRC))
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

test: unit e2e

unit: $(UNIT_BINS) | deps
	@sh tests/run_unit.sh $(UNIT_BINS)

e2e: $(SHOALD) $(SHOAL) $(MONITOR) $(IMAGE) | deps
	SHOAL_BUILD=$(abspath $(BUILD)) /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/e2e $(PYTEST_ARGS)

bench: $(SHOALD) $(SHOAL) $(MONITOR) $(IMAGE) $(BENCH_BINS) | deps
	SHOAL_BUILD=$(abspath $(BUILD)) sh bench/run.sh

demo: $(SHOALD) $(SHOAL) $(MONITOR) $(IMAGE) | deps
	SHOAL_BUILD=$(abspath $(BUILD)) sh examples/demo.sh start

demo-stop:
	SHOAL_BUILD=$(abspath $(BUILD)) sh examples/demo.sh stop

FORMAT_SRC = $(shell git ls-files '*.c' '*.h' 2>/dev/null)
format:
	clang-format -i $(FORMAT_SRC)

format-check:
	@clang-format --dry-run --Werror $(FORMAT_SRC) && echo "format: clean"

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
