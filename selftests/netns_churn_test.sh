#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make check's namespace churn: netns_churn.sh with its defaults (NETNS=50
# namespaces, PAR=2 at a time).  make stress runs netns_churn.sh itself
# with 1000 (selftests/stress.sh).

set -u

exec "$(dirname "$0")/netns_churn.sh" "$@"
