#!/usr/bin/env bash
# Re-vendors the web page's one JavaScript library from the npm registry (`make vendor-web`):
# ansi_up, which renders a log line's ANSI colours as HTML with the text escaped. Its files
# are committed, so neither the machine serving the page nor CI needs npm; this is run only
# to move to another version (change ANSI_UP below, run, review the diff, commit).
set -euo pipefail
ANSI_UP=6.0.6
here=$(cd "$(dirname "$0")/.." && pwd)
dest="$here/api_server/web/vendor"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent "ansi_up@$ANSI_UP" >/dev/null
tar xzf "ansi_up-$ANSI_UP.tgz"
mkdir -p "$dest"
cp package/ansi_up.js "$dest/ansi_up.js"
cp package/LICENSE "$dest/ansi_up.LICENSE.txt"
integrity=$(npm view "ansi_up@$ANSI_UP" dist.integrity)
cat > "$dest/VERSIONS.txt" <<TXT
Vendored from the npm registry by scripts/vendor_web.sh (make vendor-web); not edited.

ansi_up $ANSI_UP  licence MIT (ansi_up.LICENSE.txt)  files: ansi_up.js (ES module)
  npm integrity $integrity
TXT
echo "vendored ansi_up $ANSI_UP into $dest"
