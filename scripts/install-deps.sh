#!/usr/bin/env bash
# Installs the Debian packages the tests need, when their commands are
# missing. Without root or apt-get it says so loudly; the tests that need a
# missing tool then skip with their own loud message.
set -u
missing=()
for pkg in "$@"; do
  case "$pkg" in
    prometheus) cmd=promtool ;;
    prometheus-alertmanager) cmd=amtool ;;
    chromium) cmd=chromium ;;
    *) cmd=$pkg ;;
  esac
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "WARNING: cannot install ${missing[*]} (need root and apt-get); tests that need them will be skipped" >&2
  exit 0
fi
echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null && apt-get install -y -qq "${missing[@]}" >/dev/null \
  || echo "WARNING: apt-get could not install ${missing[*]}; tests that need them will be skipped" >&2
