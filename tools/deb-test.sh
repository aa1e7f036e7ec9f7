#!/usr/bin/env bash
# The Debian package, as a user gets it (run by .ci/run, as root): build it, install it
# with dpkg, and check what it installed: /usr/bin/dgram --version, every man page
# (man -w dgram, dgram-send, ..., dgram-multicast-join), the bash completion completing
# `dgram se` to `send`, the zsh and fish completions, LICENSE and README. Removes the
# package at the end. Prints "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
deb=$(bash tools/deb.sh | tail -n 1)
passed=0 failed=0
check() { # NAME COMMAND...
  local name=$1; shift
  if "$@" >/dev/null 2>&1; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAILED: $name"; fi
}
dpkg -i "$deb" >/dev/null
trap 'dpkg -r dgram >/dev/null 2>&1' EXIT
check "dgram --version" sh -c '/usr/bin/dgram --version | grep -qx "dgram 0.1.0"'
for page in dgram dgram-send dgram-listen dgram-echo dgram-relay dgram-doctor dgram-multicast \
  dgram-multicast-join dgram-multicast-send dgram-completions dgram-manpage; do
  check "man -w $page" sh -c "man -w $page | grep -q /usr/share/man/man1/$page.1.gz"
done
check "bash completes 'dgram se' to send" bash -c '
  source /usr/share/bash-completion/completions/dgram
  COMP_WORDS=(dgram se); COMP_CWORD=1; COMP_LINE="dgram se"; COMP_POINT=${#COMP_LINE}
  _dgram dgram se dgram
  [ "${COMPREPLY[*]}" = send ]'
check "zsh completion" test -s /usr/share/zsh/vendor-completions/_dgram
check "fish completion" test -s /usr/share/fish/vendor_completions.d/dgram.fish
check "LICENSE" test -s /usr/share/doc/dgram/LICENSE
check "README" test -s /usr/share/doc/dgram/README.md
check "dgram works" sh -c '/usr/bin/dgram send 127.0.0.1:9 x -q; [ $? = 3 ]'
echo "deb: $passed passed, $failed failed"
[ "$failed" = 0 ]
