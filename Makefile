# SPDX-License-Identifier: GPL-2.0
#
# tcptrace: build the module, the tool and the selftests; run them in a
# QEMU guest.  Kbuild reads ./Kbuild, so this file is only for `make`.
#
#   make            build module/tcptrace.ko, userspace/tcptracectl, selftests
#   make demo       boot the guest, trace real connections, show them
#   make check      static checks, host tests of the tool and of the bench
#                   report, then every selftest in the guest
#   make stress     the long stress and fault tests in the guest
#                   (selftests/stress.sh): STRESS_ROUNDS (200) reloads under
#                   traffic with a reader killed in read/poll, STRESS_NETNS
#                   (1000) namespaces made and destroyed while tracing,
#                   STRESS_SECS (180) of ring overflow under a slow reader,
#                   STRESS_CONNS (100000) connections against the ACK table
#                   and STRESS_CYCLES (100) load/unload cycles with Slab
#                   compared; STRESS_TIMEOUT (7200) limits the guest
#   make lint       W=1, sparse (C=2) and checkpatch --strict on the module
#   make deps       install the Debian packages needed (as root)
#   make bench      measure tcptrace's cost against no tracer, ftrace,
#                   bpftrace and tcpdump in a 2-CPU guest (bench/run.sh);
#                   the table is printed, the JSON goes to BENCH_OUT
#                   (default bench/results.json); about 15 minutes;
#                   BENCH_ALT_KO=PATH runs another build of the module
#                   side by side (conditions alt, alt+cat, alt+reader)
#   make install    install the module (modules_install, depmod), tcptracectl,
#                   its man pages, bash completion and the udev rule;
#                   DESTDIR= and PREFIX= (default /usr/local) are honoured;
#                   KEY= and CERT= sign the installed module
#   make uninstall  remove what make install installed
#   make dkms-install   register the sources with DKMS (/usr/src/tcptrace-V),
#                   build and install the module for KVER (default: KDIR's)
#   make dkms-remove    remove it from DKMS for every kernel, and the sources
#   make sign KEY=key.pem CERT=cert.der [KO=module/tcptrace.ko]
#                   sign the module for Secure Boot with the kernel's sign-file
#   make kernels    build the module against every linux-headers package the
#                   package sources offer, installing them (scripts/kernels.sh)
#   make check-install  the install, DKMS, signing, man page and completion
#                   checks of make check (scripts/install-test.sh)
#   make check-debug    the module under a debug kernel: Debian's
#                   linux-source-6.1 built with KASAN, lockdep, kmemleak,
#                   UBSAN bounds and atomic-sleep checks (once, about 20
#                   minutes on 2 cores, then cached), booted in the guest for
#                   a smoke subset of the selftests and stress tests and two
#                   kmemleak scans (about 10 minutes); fails on any report
#                   of the checkers (scripts/check-debug.sh)
#   make fuzz       fuzz tcptracectl's record decoder (-i) and JSON reader (-r)
#                   with libFuzzer, ASan and UBSan, FUZZ_SECONDS (default 60)
#                   each, from seeds made of real records; fails on any crash
#                   and prints the reproducer (userspace/fuzz/)
#
# KDIR selects the kernel build tree; by default the running kernel's, else
# the newest installed Debian 6.1 headers (linux-headers-6.1.0-N-amd64: not
# the 6.12 backports, -rt or -cloud flavours).

SHELL := /bin/bash

ifeq ($(origin KDIR),undefined)
KDIR = $(or $(wildcard /lib/modules/$(shell uname -r)/build),$(lastword \
	$(shell ls -d /usr/src/linux-headers-6.1.0-*-amd64 2>/dev/null | \
	grep -E '/linux-headers-6\.1\.0-[0-9]+-amd64$$' | sort -V)))
KDIR_WHY = $(if $(wildcard /lib/modules/$(shell uname -r)/build),the running kernel's,newest Debian 6.1 headers: /lib/modules/$(shell uname -r)/build does not exist)
else
KDIR_WHY = set by KDIR=
endif

# the kernel the guest boots must be the one the module is built for
KVER = $(shell sed -n 's/.*UTS_RELEASE "\(.*\)"/\1/p' \
	$(KDIR)/include/generated/utsrelease.h 2>/dev/null)
VMENV = $(if $(wildcard /boot/vmlinuz-$(KVER)),KERNEL=/boot/vmlinuz-$(KVER))
VMRUN = $(VMENV) selftests/vm/run

.PHONY: all deps build module tool selftests lint check demo clean help bench
.PHONY: install uninstall dkms-install dkms-remove sign kernels check-install
.PHONY: check-debug fuzz stress

all: deps
	@$(MAKE) --no-print-directory build

deps:
	@scripts/deps.sh all

build: module tool selftests

module:
	@test -n "$(KDIR)" -a -d "$(KDIR)" || { echo "no kernel build tree: install linux-headers-amd64 or set KDIR=" >&2; exit 1; }
	@echo "KDIR=$(KDIR) ($(KDIR_WHY))"
	$(MAKE) -C $(KDIR) M=$(CURDIR) W=1 modules

tool:
	$(MAKE) -C userspace

selftests:
	$(MAKE) -C selftests

lint: module
	@KDIR=$(KDIR) scripts/lint.sh

# all the install checks need too, before the tool's tests (promtool)
check:
	@scripts/deps.sh install
	@$(MAKE) --no-print-directory build
	@KDIR=$(KDIR) $(VMENV) scripts/check.sh

demo: deps
	@$(MAKE) --no-print-directory build
	$(VMRUN) -- scripts/demo.sh

clean:
	-$(MAKE) -C $(KDIR) M=$(CURDIR) clean
	-$(MAKE) -C userspace clean
	-$(MAKE) -C selftests clean
	rm -rf .build

# the guest sees only the repository: it writes there, the host moves it
BENCH_OUT ?= bench/results.json
BENCH_VARS = $(foreach v,BENCH_ROUNDS BENCH_SECS BENCH_PROCS BENCH_CONDS BENCH_WARMUP \
	BENCH_LOSS BENCH_LOSS_BUFS BENCH_READ BENCH_PROFILE BENCH_PROFILE_FREQ BENCH_PROFILE_LINES \
	BENCH_ALT_KO,$(if $($(v)),$(v)='$($(v))'))

# the guest's clocksource: tsc (tsc=reliable: the TSC, as on real machines;
# bench/clockcheck checks that it agrees between the vCPUs) or hpet (what
# the kernel picks by itself under TCG: every clock read an emulated device
# access); BENCH_ACCEL is QEMU's -accel (TCPTRACE_VM_ACCEL): multi-threaded
# TCG by default, one host thread per vCPU like real CPUs (the module is
# loaded only between runs, while no connection is being made)
BENCH_CLOCK ?= tsc
comma := ,
BENCH_ACCEL ?= $(if $(TCPTRACE_VM_ACCEL),$(TCPTRACE_VM_ACCEL),tcg$(comma)thread=multi)
BENCH_APPEND = $(if $(filter tsc,$(BENCH_CLOCK)),tsc=reliable,$(if \
	$(filter hpet,$(BENCH_CLOCK)),clocksource=hpet,$(error BENCH_CLOCK is tsc or hpet)))

bench:
	@scripts/deps.sh bench
	@$(MAKE) --no-print-directory build
	$(MAKE) -C bench
	TCPTRACE_VM_APPEND='$(BENCH_APPEND) $(TCPTRACE_VM_APPEND)' \
	TCPTRACE_VM_ACCEL='$(BENCH_ACCEL)' \
	$(VMRUN) --smp 2 --timeout 1500 -- env BENCH_OUT=bench/.results.json \
		$(BENCH_VARS) bench/run.sh
	@if [ -s bench/.results.json ]; then mv bench/.results.json $(BENCH_OUT) && \
		echo "results: $(BENCH_OUT)"; fi

# the knobs of selftests/stress.sh, passed to the guest when set
STRESS_TIMEOUT ?= 7200
STRESS_VARS = $(foreach v,STRESS_ROUNDS STRESS_NETNS STRESS_PAR STRESS_SECS \
	STRESS_CONNS STRESS_CYCLES STRESS_SLAB_TOL_KB STRESS_TESTS,$(if $($(v)),$(v)='$($(v))'))

stress: deps
	@$(MAKE) --no-print-directory build
	$(VMRUN) --timeout $(STRESS_TIMEOUT) -- env $(STRESS_VARS) selftests/stress.sh

# ---- installing -----------------------------------------------------------
PREFIX ?= /usr/local
SBINDIR ?= $(PREFIX)/sbin
MANDIR ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
UDEVRULESDIR ?= $(PREFIX)/lib/udev/rules.d
INSTALL_MOD_DIR ?= extra
MODDEST = $(DESTDIR)/lib/modules/$(KVER)/$(INSTALL_MOD_DIR)/tcptrace.ko
KO ?= module/tcptrace.ko
SIGN_FILE = $(KDIR)/scripts/sign-file
SIGN_HASH = $(or $(shell sed -n 's/^CONFIG_MODULE_SIG_HASH="\(.*\)"/\1/p' \
	$(KDIR)/include/config/auto.conf 2>/dev/null),sha256)
DKMS_VERSION := $(shell sed -n 's/^PACKAGE_VERSION="\(.*\)"/\1/p' dkms.conf)
DKMS_SRC = /usr/src/tcptrace-$(DKMS_VERSION)
DKMS_FILES = Kbuild module/Kbuild $(wildcard module/*.h) \
	$(filter-out %.mod.c,$(wildcard module/*.c))

# sign_ko FILE: append a signature made with KEY and CERT to FILE
define sign_ko
	@test -x "$(SIGN_FILE)" || { echo "no $(SIGN_FILE): install the kernel headers" >&2; exit 1; }
	@test -r "$(KEY)" -a -r "$(CERT)" || { echo "cannot read KEY=$(KEY) or CERT=$(CERT)" >&2; exit 1; }
	@if [ "$$(tail -c 28 $(1))" = '~Module signature appended~' ]; then \
		echo "$(1) is already signed (by $$(modinfo -F signer $(1))): rebuild it to sign again" >&2; exit 1; fi
	$(SIGN_FILE) $(SIGN_HASH) $(KEY) $(CERT) $(1)
	@echo "$(1): signed by $$(modinfo -F signer $(1)), $$(modinfo -F sig_hashalgo $(1))"
endef

install: module tool
	$(MAKE) -C $(KDIR) M=$(CURDIR)/module INSTALL_MOD_PATH=$(DESTDIR) \
		INSTALL_MOD_DIR=$(INSTALL_MOD_DIR) CONFIG_MODULE_SIG_ALL= modules_install
	$(if $(KEY)$(CERT),$(call sign_ko,$(MODDEST)))
	$(if $(DESTDIR),@echo "depmod not run for DESTDIR: run 'depmod -a $(KVER)' where it is installed", \
		depmod -a $(KVER))
	install -D -m 755 userspace/tcptracectl $(DESTDIR)$(SBINDIR)/tcptracectl
	install -D -m 644 userspace/tcptracectl.8 $(DESTDIR)$(MANDIR)/man8/tcptracectl.8
	install -D -m 644 module/tcptrace.4 $(DESTDIR)$(MANDIR)/man4/tcptrace.4
	install -D -m 644 userspace/tcptracectl.bash-completion \
		$(DESTDIR)$(BASHCOMPDIR)/tcptracectl
	install -D -m 644 module/99-tcptrace.rules \
		$(DESTDIR)$(UDEVRULESDIR)/99-tcptrace.rules
	$(if $(DESTDIR),,-udevadm control --reload 2>/dev/null)

uninstall:
	rm -f $(MODDEST) $(DESTDIR)$(SBINDIR)/tcptracectl \
		$(DESTDIR)$(MANDIR)/man8/tcptracectl.8 \
		$(DESTDIR)$(MANDIR)/man4/tcptrace.4 \
		$(DESTDIR)$(BASHCOMPDIR)/tcptracectl \
		$(DESTDIR)$(UDEVRULESDIR)/99-tcptrace.rules
	$(if $(DESTDIR),,depmod -a $(KVER))
	$(if $(DESTDIR),,-udevadm control --reload 2>/dev/null)

sign: $(if $(filter module/tcptrace.ko,$(KO)),module)
	@test -n "$(KEY)" -a -n "$(CERT)" || { echo "usage: make sign KEY=signing_key.pem CERT=signing_cert.der [KO=module/tcptrace.ko]" >&2; exit 2; }
	$(call sign_ko,$(KO))

dkms-install:
	@scripts/deps.sh install
	@test -n "$(KVER)" || { echo "no kernel release: set KDIR= or KVER=" >&2; exit 1; }
	@$(MAKE) --no-print-directory dkms-remove
	install -d $(DKMS_SRC)/module/uapi
	install -m 644 dkms.conf $(DKMS_SRC)/
	for f in $(DKMS_FILES); do install -m 644 $$f $(DKMS_SRC)/$$f || exit; done
	install -m 644 module/uapi/tcptrace.h $(DKMS_SRC)/module/uapi/
	dkms add tcptrace/$(DKMS_VERSION)
	dkms build tcptrace/$(DKMS_VERSION) -k $(KVER)
	dkms install tcptrace/$(DKMS_VERSION) -k $(KVER)

dkms-remove:
	@if [ -n "$$(dkms status -m tcptrace -v $(DKMS_VERSION) 2>/dev/null)" ]; then \
		echo "dkms remove tcptrace/$(DKMS_VERSION) --all"; \
		dkms remove tcptrace/$(DKMS_VERSION) --all; fi
	rm -rf $(DKMS_SRC)

kernels:
	scripts/kernels.sh --install

check-install:
	@scripts/deps.sh install
	@$(MAKE) --no-print-directory build
	@KDIR=$(KDIR) scripts/install-test.sh

check-debug:
	@scripts/deps.sh debug
	@$(MAKE) --no-print-directory tool selftests
	@scripts/check-debug.sh

FUZZ_SECONDS ?= 60

fuzz:
	@scripts/deps.sh fuzz
	@$(MAKE) --no-print-directory -C userspace/fuzz run FUZZ_SECONDS=$(FUZZ_SECONDS)

help:
	@sed -n '3,/^$$/{/^#/p}' Makefile | sed 's/^# \{0,1\}//'
