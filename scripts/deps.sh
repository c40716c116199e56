#!/usr/bin/env bash
# Installs the Debian packages quill needs to build and test, when they are missing.
# Safe to run repeatedly: it only calls apt-get when a header or tool is absent.
set -euo pipefail
need=()
[ -f /usr/include/httplib.h ]          || need+=(libcpp-httplib-dev)
[ -f /usr/include/nlohmann/json.hpp ]  || need+=(nlohmann-json3-dev)
[ -f /usr/include/xxhash.h ]           || need+=(libxxhash-dev)
[ -f /usr/include/doctest/doctest.h ]  || need+=(doctest-dev)
command -v cmake >/dev/null            || need+=(cmake)
command -v g++ >/dev/null              || need+=(g++)
if [ ${#need[@]} -gt 0 ]; then
  echo "deps: installing ${need[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
