#!/usr/bin/env bash
# Installs the Debian packages lowband needs to build and test, if missing:
# cmake (libopus is built from source), ALSA headers (cpal), pkg-config,
# PulseAudio for the virtual sound card used by device tests, and tmux for
# scripts/tui-demo.sh.
set -euo pipefail
need=()
command -v cmake >/dev/null || need+=(cmake)
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v cc >/dev/null || need+=(build-essential)
pkg-config --exists alsa 2>/dev/null || need+=(libasound2-dev)
if [ "${LOWBAND_DEVICE_TESTS:-0}" = 1 ]; then
  command -v pulseaudio >/dev/null || need+=(pulseaudio pulseaudio-utils libasound2-plugins)
fi
if [ "${LOWBAND_TUI_DEMO:-0}" = 1 ]; then
  command -v tmux >/dev/null || need+=(tmux)
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}" >&2
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
