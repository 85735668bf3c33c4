#!/usr/bin/env bash
# Sourced by the bench scripts: `need TOOL [PACKAGE]` installs a Debian
# package when TOOL is not on PATH (as root), or stops with the command to
# run (otherwise).
need() {
  local tool=$1 package=${2:-$1}
  command -v "$tool" >/dev/null && return
  if [ "$(id -u)" = 0 ]; then
    apt-get install -y -q "$package" >/dev/null \
      || { apt-get update -q >/dev/null && apt-get install -y -q "$package" >/dev/null; }
  else
    echo "$tool is not installed: sudo apt-get install $package" >&2
    exit 2
  fi
}
