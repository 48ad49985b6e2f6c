#!/usr/bin/env bash
# ONNX Runtime's C header, for kd-edge-point-bench's onnxruntime row (the library itself comes
# from the onnxruntime wheel). The wheel ships no header and Debian 12 has no libonnxruntime-dev;
# Debian 13 does. Where /usr/include/onnxruntime has no header, this downloads Debian 13's
# libonnxruntime-dev from Debian's archive and unpacks it into build/onnxruntime-headers:
# nothing is installed. The header's C API version (21, ONNX Runtime 1.21) is served by any
# newer library. Then rebuild (make build) so that CMake finds it.
set -euo pipefail
cd "$(dirname "$0")/../.."
dest=build/onnxruntime-headers
if [ -f /usr/include/onnxruntime/onnxruntime_c_api.h ] || [ -f $dest/usr/include/onnxruntime/onnxruntime_c_api.h ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then
  echo "SKIPPED ONNX Runtime's C header: no apt-get here (install libonnxruntime-dev, or its headers, by hand)"
  exit 0
fi
state=$PWD/$dest/apt
mkdir -p "$state/lists/partial" "$state/cache/archives/partial"
cat > "$state/trixie.sources" <<SOURCES
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
apt=(apt-get -qq -o "Dir::Etc::sourcelist=$state/trixie.sources" -o Dir::Etc::sourceparts=- -o "Dir::State::Lists=$state/lists"
     -o "Dir::Cache=$state/cache" -o Debug::NoLocking=1 -o APT::Sandbox::User="$(id -un)")
if "${apt[@]}" update && (cd "$state" && "${apt[@]}" download libonnxruntime-dev); then
  dpkg-deb -x "$state"/libonnxruntime-dev_*.deb "$dest"
  rm -rf "$state"
  echo "ONNX Runtime's C header: $dest/usr/include/onnxruntime"
else
  echo "SKIPPED ONNX Runtime's C header: could not download libonnxruntime-dev from Debian's archive"
fi
