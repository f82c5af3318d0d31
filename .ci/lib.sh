# Helpers the .ci/setup.d steps share. Sourced by .ci/run; never run on its own.

# apt_install PKG...: installs the Debian packages not yet installed (apt-get update at most once a run).
apt_install() {
  local missing=()
  for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p"); done
  [ "${#missing[@]}" -eq 0 ] && return 0
  if [ -z "${ZTO_APT_UPDATED:-}" ]; then apt-get update -qq </dev/null; ZTO_APT_UPDATED=1; fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
}

# on_exit CMD: runs CMD when .ci/run ends, last registered first (whatever started a service stops it).
ZTO_EXIT_HOOKS=()
on_exit() { ZTO_EXIT_HOOKS=("$1" "${ZTO_EXIT_HOOKS[@]}"); }
run_exit_hooks() { local h; for h in "${ZTO_EXIT_HOOKS[@]}"; do eval "$h" || true; done; }
