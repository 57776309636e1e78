#!/usr/bin/env bash
# Starts MegaPortrait from wherever the archive was unpacked; an offline model pack placed beside
# the archive is found by the app on first start (MEGAPORTRAIT_PACK_DIR).
here="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)"
export MEGAPORTRAIT_PACK_DIR="${MEGAPORTRAIT_PACK_DIR:-$(dirname "$here")}"
exec "$here/MegaPortrait/megaportrait" "$@"
