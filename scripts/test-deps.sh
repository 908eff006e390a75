#!/usr/bin/env bash
# System packages the test suite uses. Idempotent and quick when everything is there;
# best-effort: it never fails the build (tests that need a missing package skip, saying why).
#   chromium   - the web UI browser tests (Playwright drives /usr/bin/chromium; no download)
#   postgresql - the run-DB contract suite against a real PostgreSQL (initdb as 'postgres')
set -u

need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)

if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "test-deps: apt-get not available; tests needing ${need[*]} will skip" >&2
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "test-deps: not root and no sudo; tests needing ${need[*]} will skip" >&2
        exit 0
    fi
fi
echo "test-deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
{ $SUDO apt-get update -q && $SUDO apt-get install -y -q "${need[@]}"; } \
    >/tmp/mlflowlet-test-deps.log 2>&1 \
    || echo "test-deps: apt-get failed (see /tmp/mlflowlet-test-deps.log); those tests will skip" >&2
exit 0
