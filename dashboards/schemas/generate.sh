#!/usr/bin/env bash
# Regenerate the JSON Schemas of Grafana's dashboard model and panel options from npm
# @grafana/schema (version pinned in package.json). Needs Node and npm; the packages go to
# ../../.cache/grafana-schemas, the schemas next to this script. Run by `make grafana-schemas`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$here/../../.cache/grafana-schemas"
mkdir -p "$work"
cp "$here/package.json" "$work/package.json"
(cd "$work" && npm install --no-audit --no-fund --ignore-scripts --silent)
raw="$work/node_modules/@grafana/schema/dist/types/raw"
gen() { (cd "$work" && npx --no-install ts-json-schema-generator --no-type-check --path "$1" --type "$2" -o "$3"); }
gen "$raw/dashboard/x/types.gen.d.ts" Dashboard "$here/dashboard.json"
for panel in stat table timeseries barchart bargauge; do
  gen "$raw/composable/$panel/panelcfg/x/types.gen.d.ts" Options "$here/panel-$panel.json"
  gen "$raw/composable/$panel/panelcfg/x/types.gen.d.ts" FieldConfig "$here/field-$panel.json" 2>/dev/null \
    || rm -f "$here/field-$panel.json"
done
echo "Schemas written to $here"
