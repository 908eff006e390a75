#!/usr/bin/env bash
# System packages the test suite uses. Idempotent and quick when everything is there.
#   chromium   - the web UI browser tests (Playwright drives /usr/bin/chromium; no download)
#   postgresql - the run-DB contract suite against a real PostgreSQL (initdb as 'postgres')
# When a package cannot be installed it says why; under MLFLOWLET_TEST_STRICT=1 (CI) it fails,
# since the tests that need it would otherwise fail one by one (see tests/_strict.py).
set -u

need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)

if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi
fail() {
    echo "test-deps: $1; cannot install ${need[*]}" >&2
    if [ "${MLFLOWLET_TEST_STRICT:-0}" != "0" ]; then
        echo "test-deps: MLFLOWLET_TEST_STRICT is set: the tests needing them would fail" >&2
        exit 1
    fi
    echo "test-deps: tests needing ${need[*]} will skip" >&2
    exit 0
}
command -v apt-get >/dev/null 2>&1 || fail "apt-get is not available"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        fail "not root and no password-less sudo"
    fi
fi
echo "test-deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
{ $SUDO apt-get update -q && $SUDO apt-get install -y -q "${need[@]}"; } \
    >/tmp/mlflowlet-test-deps.log 2>&1 \
    || fail "apt-get failed (see /tmp/mlflowlet-test-deps.log)"
exit 0
