# Tandem build. `make` builds the programs, `make check` runs every test
# (sanitized), `make demo` runs the lab demo, `make bench` the benchmarks.
# Every target that needs Debian packages installs them first
# (scripts/deps.sh is a no-op when they are present).

# `make VERSION=1.1.0` builds the same source as another version (tests and
# the demo make newer images of the project itself). A version other than
# the VERSION file's builds in its own directory (build-1.1.0/,
# build-san-1.1.0/), so it never mixes with or clobbers build/.
FILE_VERSION := $(shell cat VERSION)
VERSION ?= $(FILE_VERSION)
ifneq ($(VERSION),$(FILE_VERSION))
B_SUFFIX := -$(VERSION)
endif
CC ?= cc
PKGS := libsodium libfyaml libmnl jansson libnetfilter_conntrack sqlite3 libnftables libarchive libmicrohttpd
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
        -Wno-unused-parameter -Werror
BASE_CFLAGS := -std=gnu11 $(WARN) -D_GNU_SOURCE -DTND_VERSION='"$(VERSION)"' \
               -Isrc $(PKG_CFLAGS)

ifeq ($(SAN),1)
B ?= build-san$(B_SUFFIX)
OPT := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
       -fno-sanitize-recover=undefined
else
B ?= build$(B_SUFFIX)
OPT := -O2 -g
endif
CFLAGS ?=
CFLAGS += $(BASE_CFLAGS) $(OPT)
LDFLAGS += $(OPT)

CORE_SRC := $(wildcard src/core/*.c) $(wildcard src/conf/*.c)
IO_SRC   := $(wildcard src/io/*.c) $(wildcard src/api/*.c)
CLI_SRC  := $(wildcard src/cli/*.c)
CORE_OBJ := $(CORE_SRC:%.c=$(B)/%.o)
# The dashboard (www/) is built into tandemd as C arrays.
WWW_FILES := $(wildcard www/*)
IO_OBJ   := $(IO_SRC:%.c=$(B)/%.o) $(B)/gen/www_data.o
CLI_OBJ  := $(CLI_SRC:%.c=$(B)/%.o)

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/%)
SIM_BIN  := $(B)/tests/simulate
CTSIM_BIN := $(B)/tests/ctsimulate

PROGS := $(B)/tandemd $(B)/tandemctl $(B)/tandem-probe

.PHONY: all deps check demo bench clean unit sim golden fuzz lab cli image test-sanitized
all: $(PROGS)

deps:
	@bash scripts/deps.sh

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(B)/gen/www_data.c: tools/embed.py $(WWW_FILES)
	@mkdir -p $(dir $@)
	python3 tools/embed.py www $@
$(B)/gen/www_data.o: $(B)/gen/www_data.c
	$(CC) $(CFLAGS) -c $< -o $@

$(B)/libcore.a: $(CORE_OBJ)
	ar rcs $@ $^
$(B)/libio.a: $(IO_OBJ)
	ar rcs $@ $^

$(B)/tandemd: $(B)/src/main.o $(B)/libio.a $(B)/libcore.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)
$(B)/tandemctl: $(CLI_OBJ) $(B)/libio.a $(B)/libcore.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)
$(B)/tandem-probe: $(B)/tools/probe.o
	$(CC) $(LDFLAGS) -o $@ $^ -lm

# libio.a too: a unit test of a pure renderer in src/api (metrics) pulls
# only the objects it references.
$(B)/tests/test_%: $(B)/tests/unit/test_%.o $(B)/libio.a $(B)/libcore.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -lcmocka
# The netlink driver and hook runner, checked against a real kernel inside
# a network namespace by tests/lab/test_nl.sh.
$(B)/tests/nl_check: $(B)/tests/lab/nl_check.o $(B)/libio.a $(B)/libcore.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)
# The conntrack driver against real kernels: tests/lab/test_ct.sh.
$(B)/tests/ct_check: $(B)/tests/lab/ct_check.o $(B)/libio.a $(B)/libcore.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)
# The configuration store against a real file system: tests/lab/test_store.sh.
$(B)/tests/store_check: $(B)/tests/lab/store_check.o $(B)/libio.a $(B)/libcore.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)
# The image transfer driver with real files: tests/lab/test_xfer.sh.
$(B)/tests/xfer_check: $(B)/tests/lab/xfer_check.o $(B)/libio.a $(B)/libcore.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)
$(SIM_BIN): $(B)/tests/sim/sim.o $(B)/libcore.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

# The session-sync core's simulator (and `--bench N` micro-benchmark).
$(CTSIM_BIN): $(B)/tests/sim/ctsim.o $(B)/libcore.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

# The configuration-sync core's simulator.
CFGSIM_BIN := $(B)/tests/cfgsimulate
$(CFGSIM_BIN): $(B)/tests/sim/cfgsim.o $(B)/libcore.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

# The in-service upgrade coordinator's simulator.
UPGSIM_BIN := $(B)/tests/upgsimulate
$(UPGSIM_BIN): $(B)/tests/sim/upgsim.o $(B)/libcore.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done
	@# The metrics renderer's output, strictly parsed by promtool.
	METRICS_OUT=$(B)/tests/metrics.txt $(B)/tests/test_metrics >/dev/null
	bash tests/api/promcheck.sh $(B)/tests/metrics.txt
	bash tests/api/promcheck.sh $(B)/tests/metrics.txt.escaping
sim: $(SIM_BIN) $(CTSIM_BIN) $(CFGSIM_BIN) $(UPGSIM_BIN)
	$(SIM_BIN) --seeds 200
	$(CTSIM_BIN) --seeds 100
	$(CFGSIM_BIN) --seeds 60
	$(UPGSIM_BIN) --seeds 100
golden: $(B)/tandemd
	bash tests/golden/run.sh $(B)/tandemd
fuzz:
	bash tests/fuzz/run.sh
cli: all
	bash tests/cli/run.sh $(B)
# Software images end to end: builds this source again as the next minor
# version beside $(B) (in $(B)-NEXT), then keygen, build, verify, every
# kind of bad image, extraction and a full disk (tests/image/run.sh).
image: all
	bash tests/image/run.sh $(B)
lab: all $(B)/tests/nl_check $(B)/tests/ct_check $(B)/tests/store_check $(B)/tests/xfer_check
	bash tests/lab/run.sh $(B)

# The test suite: everything built with AddressSanitizer and
# UndefinedBehaviorSanitizer, then unit, golden, simulator, fuzz and lab.
check: deps
	$(MAKE) SAN=1 test-sanitized
test-sanitized: all unit golden sim cli image fuzz lab
	@echo "make check: all tests passed"

demo: deps
	$(MAKE) all
	bash tests/lab/demo.sh build

bench: deps
	$(MAKE) all
	bash bench/run.sh build

clean:
	rm -rf build build-san build-fuzz build-[0-9]* build-san-[0-9]*

-include $(shell find $(B) -name '*.d' 2>/dev/null)
