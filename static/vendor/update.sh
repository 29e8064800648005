#!/usr/bin/env bash
# Refresh the vendored front-end files from npm at the versions pinned in package.json.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
cp "$here/package.json" "$work/"
(cd "$work" && npm install --no-audit --no-fund --silent)
mkdir -p "$here/chartjs" "$here/swagger-ui"
cp "$work/node_modules/chart.js/dist/chart.umd.min.js" "$work/node_modules/chart.js/LICENSE.md" "$here/chartjs/"
for f in swagger-ui-bundle.js swagger-ui.css LICENSE NOTICE swagger-ui-bundle.js.LICENSE.txt; do
  cp "$work/node_modules/swagger-ui-dist/$f" "$here/swagger-ui/"
done
rm -rf "$work"
echo "vendored: chart.js $(node -p "require('$here/package.json').dependencies['chart.js']"), swagger-ui-dist $(node -p "require('$here/package.json').dependencies['swagger-ui-dist']")"
