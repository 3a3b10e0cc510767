#!/usr/bin/env bash
# The main job (scripts/main.sh) builds what it runs: the cozy program and
# every plugin, and no test or benchmark. Arguments: the source and build
# folders (a Ninja build).
set -euo pipefail
root=$1 build=$2
grep -q -- '--target cozy' "$root/scripts/main.sh" || { echo "scripts/main.sh does not build the cozy target alone"; exit 1; }
commands=$(ninja -C "$build" -t commands cozy)
plugins=0
for plugin in "$build"/plugins/libcozy_*.so; do
  name=$(basename "$plugin")
  grep -q "$name" <<<"$commands" || { echo "building cozy does not build the plugin $name"; exit 1; }
  plugins=$((plugins + 1))
done
((plugins >= 7)) || { echo "only $plugins plugins in $build/plugins"; exit 1; }
if extra=$(grep -E -o "(tests|bench)/[^ ]*\.cpp" <<<"$commands" | head -3) && [ -n "$extra" ]; then
  echo "building cozy compiles tests or benchmarks: $extra"
  exit 1
fi
echo "cozy and its $plugins plugins: $(wc -l <<<"$commands") commands, no test or benchmark"
