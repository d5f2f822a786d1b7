#!/bin/sh
# Writes the manual page of `switchyard` or of one of its subcommands from the built
# binary's own --help, so the pages list exactly the options the command accepts.
#
#   help2man.sh HELP2MAN SWITCHYARD VERSION SUBCOMMAND|- INCLUDE OUTPUT
#
# INCLUDE (docs/man/*.h2m) adds the sections --help cannot give: NAME, files, environment,
# exit status, examples, see also. help2man names the page after the program it runs, so a
# subcommand is run through a two-line wrapper called switchyard-SUBCOMMAND.
set -eu
help2man=$1 bin=$2 version=$3 sub=$4 include=$5 output=$6

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ "$sub" = - ]; then
  prog=$tmp/switchyard
  printf '#!/bin/sh\nexec "%s" "$@"\n' "$bin" > "$prog"
else
  prog=$tmp/switchyard-$sub
  printf '#!/bin/sh\nexec "%s" %s "$@"\n' "$bin" "$sub" > "$prog"
fi
chmod +x "$prog"

# No plugin is needed for --help; an empty plugin path keeps the output independent of
# whatever is installed on the build machine.
SWITCHYARD_PLUGIN_PATH= "$help2man" --no-info --no-discard-stderr --section=1 \
  --source="switchyard $version" --manual="Switchyard manual" \
  --version-string="$version" --include="$include" --output="$output.tmp" "$prog"
# help2man names the page after the wrapper's file name only; make sure the temporary
# directory never reaches the page (a reproducible build must not depend on it).
if grep -q "$tmp" "$output.tmp"; then
  echo "help2man.sh: $output would contain the temporary path $tmp" >&2
  exit 1
fi
mv "$output.tmp" "$output"
