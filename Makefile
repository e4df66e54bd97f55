# Keel build.  Plain GNU make: one flat dependency graph, no configure step,
# and every new file under src/ or tests/unit/ is picked up by wildcard, so
# adding a module never means editing this file.
#
#   make            build/keeld, build/keelctl, build/configdoc, unit tests,
#                   fake NVML, benches
#   make run        install what building and running need, build, run
#                   `keeld all`
#   make test       install what the tests need too, build, run every test
#                   (plain and in a browser, the soak, the Debian package,
#                   then AddressSanitizer+UBSan, then valgrind, then fuzz)
#   make valgrind   unit tests under memcheck, then VALGRIND_SUBSET (one or
#                   two integration files per service) with every keeld and
#                   keelctl under memcheck: a few minutes, part of `make test`
#   make valgrind-full  the same with the whole integration suite (long)
#   make soak       `keeld all` under 1,000 simulated agents for 10 minutes
#                   (tests/soak/soak.py): no failed request, every agent
#                   registered, every error stored, resident memory flat;
#                   soak-ci, a 90 s version (baseline after 30 s), is part
#                   of `make test`
#   make SAN=1 BUILD=build-san ...   the same targets, sanitized
#   make fuzz       libFuzzer targets (fuzz/) built with clang into
#                   build-fuzz/, each run FUZZ_SECONDS (60); fuzz-check
#                   (the bounded run in `make test`) replays corpus and
#                   regressions, then fuzzes 10 s each
#   make install    keeld, keelctl, units, the keel user (sysusers.d), its
#                   directories (tmpfiles.d), logrotate, manual pages,
#                   completion and /etc/keel/keel.yaml under DESTDIR and
#                   PREFIX (/usr/local)
#   make deb        the Debian package, built from debian/ with
#                   dpkg-buildpackage in build/deb/; package-test installs
#                   it on this machine, runs it as the keel user, purges it

BUILD   ?= build
SAN     ?= 0
CC      ?= cc
PYTHON  ?= /usr/bin/python3

PKGS    := libzmq jansson sqlite3 hiredis \
           libsodium yaml-0.1
# libnats is loaded, not linked, by the ErrorBus's NATS bridge
# (src/errorbus/natslib.h): only its header is needed to build keeld.  The
# errorbus bench links it, to publish through nats-server beside the bus.
NATS    := libnats
NATS_LIBS := $(shell pkg-config --libs $(NATS))
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -pthread \
           -Isrc/common -Isrc $(shell pkg-config --cflags $(PKGS) $(NATS))
LDLIBS  += $(shell pkg-config --libs $(PKGS)) -ldl -lm -lpthread
ifeq ($(SAN),1)
CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer \
           -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
endif
# The fuzz build: every object instrumented for libFuzzer, which supplies
# main() only when a target in fuzz/ is linked.
ifeq ($(FUZZ),1)
CFLAGS  += -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer \
           -fno-sanitize-recover=undefined
endif

COMMON_SRC  := $(wildcard src/common/*.c)
SERVICE_SRC := $(wildcard src/core/*.c src/resource/*.c \
               src/observability/*.c src/errorbus/*.c src/security/*.c)
COMMON_OBJ  := $(COMMON_SRC:%.c=$(BUILD)/obj/%.o)
SERVICE_OBJ := $(SERVICE_SRC:%.c=$(BUILD)/obj/%.o)
CTL_SRC     := $(wildcard src/cmd/ctl/*.c)
CTL_OBJ     := $(CTL_SRC:%.c=$(BUILD)/obj/%.o)
UNIT_SRC    := $(wildcard tests/unit/test_*.c)
UNIT_BIN    := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
BENCH_SRC   := $(wildcard bench/*.c)
BENCH_BIN   := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
BENCH_LIB   := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard bench/common/*.c))
.SECONDARY: $(BENCH_LIB)
FAKE_NVML   := $(BUILD)/tests/libfake-nvml.so
# The charts are drawn by Chart.js from Debian's libjs-chart.js
# (scripts/install-deps.sh), compiled in with the page: nothing is fetched
# at build or run time.
CHARTJS     ?= /usr/share/javascript/chart.js/chart.min.js
WEB_SRC     := $(wildcard web/*.html web/*.js web/*.css web/*.svg) $(CHARTJS)
WEB_OBJ     := $(BUILD)/gen/web_assets.o

.PHONY: all run test unit integration sanitize valgrind valgrind-full bench clean deps deps-test
all: $(BUILD)/keeld $(BUILD)/keelctl $(BUILD)/configdoc $(UNIT_BIN) $(FAKE_NVML) $(BENCH_BIN)

# scripts/install-deps.sh: what building and running need; --test adds what
# the tests, benchmarks and the package build need.
deps:
	@sh scripts/install-deps.sh

deps-test:
	@sh scripts/install-deps.sh --test

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

# The dashboard's page (web/) compiled in: see scripts/embed-assets.py.
$(CHARTJS):
	$(error $(CHARTJS) is missing: run sh scripts/install-deps.sh (Debian's libjs-chart.js))

$(BUILD)/gen/web_assets.c: scripts/embed-assets.py $(WEB_SRC)
	@mkdir -p $(dir $@)
	$(PYTHON) scripts/embed-assets.py $@ $(WEB_SRC)

$(WEB_OBJ): $(BUILD)/gen/web_assets.c src/observability/web_assets.h
	@echo "  CC      $<"
	@$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

# P keeps each member's full path: two services may both have a recovery.c.
$(BUILD)/libkeel.a: $(COMMON_OBJ) $(SERVICE_OBJ) $(WEB_OBJ)
	@rm -f $@
	@$(AR) rcsP $@ $^

$(BUILD)/keeld: $(BUILD)/obj/src/cmd/keeld.o $(BUILD)/libkeel.a
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/keelctl: $(BUILD)/obj/src/cmd/keelctl.o $(CTL_OBJ) $(BUILD)/libkeel.a
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

# The documentation of every configuration key, from the key table
# (src/common/configkeys.c): keel.yaml(5), the example /etc/keel/keel.yaml
# and the table in docs/configuration.md.  A test fails when they drift.
$(BUILD)/configdoc: $(BUILD)/obj/src/cmd/configdoc.o $(BUILD)/libkeel.a
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

.PHONY: config-docs
config-docs: $(BUILD)/configdoc
	sh scripts/config-docs.sh $(BUILD)/configdoc

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(BUILD)/libkeel.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -lcmocka -o $@

$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(BENCH_LIB) $(BUILD)/libkeel.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) $(NATS_LIBS) -o $@

# The fake NVML is a plain shared library: never sanitized, because it is
# dlopen()ed into sanitized and unsanitized binaries alike.
$(FAKE_NVML): tests/fake/fake_nvml.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Werror -shared -fPIC $< -o $@

run: deps
	$(MAKE) $(BUILD)/keeld $(BUILD)/keelctl
	exec $(BUILD)/keeld all

# check-blocks.sh: no thread, ZMQ socket, child process or HTTP request in
# src/ is made outside the building block of src/common/ that makes them.
unit: all
	@sh tests/check-blocks.sh
	@sh tests/run-unit.sh $(BUILD)

integration: all
	KEEL_BUILD=$(BUILD) KEEL_SANITIZED=$(SAN) $(PYTHON) -m pytest -q -p no:cacheprovider -n 2 --timeout=300 tests/integration

sanitize:
	$(MAKE) SAN=1 BUILD=build-san unit integration

# Integration tests under memcheck (tests/integration/conftest.py): any
# memcheck error or definite leak in a keeld or keelctl fails the test that ran
# it; failing logs stay in $(BUILD)/valgrind/.  Every harness wait is 10x.
# The subset covers each service's main paths and the shared foundation.
VALGRIND_SUBSET ?= test_foundation.py test_core_wire.py test_core_children.py \
                   test_resource_manager.py test_observability_wire.py \
                   test_errorbus_ingress.py test_security_auth.py
VALGRIND_PYTEST := KEEL_VALGRIND=1 KEEL_VALGRIND_DIR=$(BUILD)/valgrind KEEL_BUILD=$(BUILD) \
                   $(PYTHON) -m pytest -q -p no:cacheprovider -n 2 --timeout=1800

valgrind: all
	@VALGRIND=1 sh tests/run-unit.sh $(BUILD)
	$(VALGRIND_PYTEST) $(addprefix tests/integration/,$(VALGRIND_SUBSET))

valgrind-full: all
	@VALGRIND=1 sh tests/run-unit.sh $(BUILD)
	$(VALGRIND_PYTEST) tests/integration

test: deps-test
	$(MAKE) unit integration browser soak-ci package-test
	$(MAKE) sanitize
	$(MAKE) valgrind
	$(MAKE) fuzz-check

# Soak: tests/soak/soak.py starts its own keeld all on a free PORT_OFFSET.
.PHONY: soak soak-ci
soak: all
	$(PYTHON) tests/soak/soak.py --build $(BUILD) --seconds 600

soak-ci: all
	$(PYTHON) tests/soak/soak.py --build $(BUILD) --seconds 90 --warmup-s 30 --agents 1000

# The dashboard in headless Chromium (tests/browser).
.PHONY: browser
browser: deps-test
	$(MAKE) $(BUILD)/keeld $(BUILD)/keelctl $(FAKE_NVML)
	cd tests/browser && npm ci --no-audit --no-fund && KEEL_BUILD=$(abspath $(BUILD)) node --test

bench: all
	sh bench/run.sh $(BUILD)

# libFuzzer targets: fuzz/README.md.
FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_BIN     := $(patsubst fuzz/%.c,$(FUZZ_BUILD)/fuzz/%,$(wildcard fuzz/fuzz_*.c))
.PHONY: fuzz fuzz-build fuzz-check
fuzz-build:
	$(MAKE) FUZZ=1 CC=clang BUILD=$(FUZZ_BUILD) $(FUZZ_BIN)

.PRECIOUS: $(BUILD)/obj/fuzz/%.o
$(BUILD)/fuzz/%: $(BUILD)/obj/fuzz/%.o $(BUILD)/libkeel.a
	@mkdir -p $(dir $@)
	$(CC) -fsanitize=fuzzer,address,undefined $^ $(LDLIBS) -o $@

fuzz: fuzz-build
	sh scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

fuzz-check: fuzz-build
	sh scripts/fuzz.sh $(FUZZ_BUILD) 10

# ---- installing and packaging ---------------------------------------------
# The usual directories; with PREFIX=/usr the configuration goes to /etc.
# The units name /usr/bin/keeld and /etc/keel/keel.yaml, rewritten here for
# another BINDIR or SYSCONFDIR.  State and logs live where the units'
# StateDirectory= and LogsDirectory= put them: /var/lib/keel, /var/log/keel.
PREFIX        ?= /usr/local
BINDIR        ?= $(PREFIX)/bin
MANDIR        ?= $(PREFIX)/share/man
SYSCONFDIR    ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
UNITDIR       ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR   ?= $(PREFIX)/lib/sysusers.d
TMPFILESDIR   ?= $(PREFIX)/lib/tmpfiles.d
COMPLETIONDIR ?= $(PREFIX)/share/bash-completion/completions
INSTALL       ?= install
PATHS_SED     := -e 's|/usr/bin/keeld|$(BINDIR)/keeld|g' -e 's|/etc/keel/|$(SYSCONFDIR)/keel/|g'

.PHONY: install deb package-test
install: $(BUILD)/keeld $(BUILD)/keelctl
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) \
	    $(DESTDIR)$(TMPFILESDIR) $(DESTDIR)$(SYSCONFDIR)/keel $(DESTDIR)$(SYSCONFDIR)/logrotate.d
	$(INSTALL) -m 0755 $(BUILD)/keeld $(BUILD)/keelctl $(DESTDIR)$(BINDIR)
	for unit in deploy/*.service; do \
	    sed $(PATHS_SED) $$unit >$(DESTDIR)$(UNITDIR)/$${unit##*/} && \
	    chmod 0644 $(DESTDIR)$(UNITDIR)/$${unit##*/} || exit 1; done
	$(INSTALL) -m 0644 deploy/keel.sysusers $(DESTDIR)$(SYSUSERSDIR)/keel.conf
	$(INSTALL) -m 0644 deploy/keel.tmpfiles $(DESTDIR)$(TMPFILESDIR)/keel.conf
	$(INSTALL) -m 0644 deploy/keel.logrotate $(DESTDIR)$(SYSCONFDIR)/logrotate.d/keel
	# an operator's own configuration is never overwritten
	[ -e $(DESTDIR)$(SYSCONFDIR)/keel/keel.yaml ] || \
	    { sed $(PATHS_SED) deploy/keel.yaml >$(DESTDIR)$(SYSCONFDIR)/keel/keel.yaml && \
	      chmod 0644 $(DESTDIR)$(SYSCONFDIR)/keel/keel.yaml; }
	# manual pages and completion by wildcard: each helper's file joins when it lands
	for page in man/*.[158]; do [ -e "$$page" ] || continue; \
	    $(INSTALL) -d $(DESTDIR)$(MANDIR)/man$${page##*.} && \
	    $(INSTALL) -m 0644 $$page $(DESTDIR)$(MANDIR)/man$${page##*.}/ || exit 1; done
	for script in deploy/completion/*; do [ -e "$$script" ] || continue; \
	    $(INSTALL) -d $(DESTDIR)$(COMPLETIONDIR) && name=$${script##*/} && \
	    $(INSTALL) -m 0644 $$script $(DESTDIR)$(COMPLETIONDIR)/$${name%.bash} || exit 1; done

deb:
	sh scripts/make-deb.sh

# Installs the package on this machine, runs keeld all from it as the keel
# user, purges it (tests/package/test_deb.sh; root, one run at a time).
package-test: deb
	sh tests/package/test_deb.sh build/deb

clean:
	rm -rf build build-san build-fuzz

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
