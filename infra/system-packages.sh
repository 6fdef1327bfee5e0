#!/usr/bin/env bash
# Install the Debian packages listed in infra/system-packages.txt whose binary is missing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
missing=()
while read -r line; do
  line=${line%%#*}; [ -z "${line// }" ] && continue
  bin=${line%%:*}; pkg=${line#*:}
  command -v "$bin" >/dev/null 2>&1 || missing+=("$pkg")
done < "$here/system-packages.txt"
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "system-packages: missing ${missing[*]}; install them with apt-get as root" >&2
  exit 0
fi
echo "system-packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
