# SPDX-License-Identifier: GPL-2.0
#
# tcptrace: build the module, the tool and the selftests; run them in a
# QEMU guest.  Kbuild reads ./Kbuild, so this file is only for `make`.
#
#   make            build module/tcptrace.ko, userspace/tcptracectl, selftests
#   make demo       boot the guest, trace real connections, show them
#   make check      static checks, tool tests, then every selftest in the guest
#   make lint       W=1, sparse (C=2) and checkpatch --strict on the module
#   make deps       install the Debian packages needed (as root)
#
# KDIR selects the kernel build tree; by default the running kernel's, else
# the newest installed Debian 6.1 headers.

SHELL := /bin/bash

ifeq ($(origin KDIR),undefined)
KDIR = $(or $(wildcard /lib/modules/$(shell uname -r)/build),$(lastword \
	$(shell ls -d /usr/src/linux-headers-6.1.*-amd64 2>/dev/null | sort -V)))
KDIR_WHY = $(if $(wildcard /lib/modules/$(shell uname -r)/build),the running kernel's,newest Debian 6.1 headers: /lib/modules/$(shell uname -r)/build does not exist)
else
KDIR_WHY = set by KDIR=
endif

# the kernel the guest boots must be the one the module is built for
KVER = $(shell sed -n 's/.*UTS_RELEASE "\(.*\)"/\1/p' \
	$(KDIR)/include/generated/utsrelease.h 2>/dev/null)
VMENV = $(if $(wildcard /boot/vmlinuz-$(KVER)),KERNEL=/boot/vmlinuz-$(KVER))
VMRUN = $(VMENV) selftests/vm/run

.PHONY: all deps build module tool selftests lint check demo clean help

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

check: deps
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

help:
	@sed -n '3,14p' Makefile | sed 's/^# \{0,1\}//'
