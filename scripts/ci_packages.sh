#!/usr/bin/env bash
# System packages the tests need and pip cannot install; Debian/Ubuntu (apt). Installs only what is
# missing, so on a machine that has them all this is a few `command -v`.
# - chromium (+ fonts-dejavu-core: text in screenshots without the recommended packages), for
#   tests/test_report_browser.py (report.html opened in a real headless browser);
# - slurm-wlm and munge, for tests/test_slurm.py (a two-node SLURM cluster on loopback: the tests start
#   and stop their own munged, slurmctld and two slurmd). A policy-rc.d keeps the packages' own scripts from
#   starting those daemons during the install.
# Without them those tests skip, saying why. Run as root, or with sudo available.
set -euo pipefail
want=()
command -v chromium >/dev/null 2>&1 || want+=(chromium fonts-dejavu-core)
for program in slurmctld slurmd sbatch; do
  command -v "$program" >/dev/null 2>&1 || { want+=(slurm-wlm); break; }
done
command -v munged >/dev/null 2>&1 || want+=(munge)
if [ ${#want[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${want[@]}"
