#!/usr/bin/env bash
# Makes docs/oow-rst-sequence.png, the picture in the README, the way a user would: a lab run
# with --capture, `ctprobe explain --svg` on the NATed cell without mitigation, and a headless
# Chromium screenshot of that SVG. As root, after `npm run build`; needs tcpdump and chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
node dist/cli/main.js lab oow-rst --offset=100000 --mitigation none --no-control --capture "$T/cap" >/dev/null
node dist/cli/main.js explain "$T/cap/nat_none_+100000.pcap" --svg "$T/oow.svg" >/dev/null || true
read -r W H < <(sed -n 's/.*<svg [^>]*width="\([0-9.]*\)" height="\([0-9.]*\)".*/\1 \2/p' "$T/oow.svg" | head -1)
B=$(command -v chromium || command -v chromium-browser)
mkdir -p docs
"$B" --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir="$T/profile" \
  --screenshot="$PWD/docs/oow-rst-sequence.png" --window-size="${W%.*},$(( ${H%.*} + 1 ))" "file://$T/oow.svg" >/dev/null 2>&1
echo "wrote docs/oow-rst-sequence.png (${W%.*}×${H%.*})"
