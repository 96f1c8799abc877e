# Helpers shared by scripts/demo, scripts/test and .ci/run (sourced, not run).
# shellcheck shell=bash

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
warn() { printf '\033[33m!!  %s\033[0m\n' "$*" >&2; }
die() { printf '\033[31mxx  %s\033[0m\n' "$*" >&2; exit 1; }

# Run a command as root: directly when we are root, through sudo when it needs no password.
# Returns 1 (running nothing) when neither is possible.
as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo -n "$@"
    else
        return 1
    fi
}

can_be_root() {
    [[ $(id -u) -eq 0 ]] || { command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; }
}

_APT_UPDATED=""
# apt_has PACKAGE: true when apt can install PACKAGE here (it has a candidate version).
# apt-cache's answer is read into a variable first: a pipeline into `grep -q` would count as failed
# under pipefail whenever grep stops reading early and apt-cache dies of SIGPIPE.
apt_has() {
    local policy
    policy="$(apt-cache policy "$1" 2>/dev/null)" || return 1
    [[ "$policy" =~ Candidate:\ [0-9] ]]
}

# apt_install PACKAGE...: install the Debian/Ubuntu packages that apt knows, when we may.
# Prints how to do it by hand otherwise. Never fails the script by itself: callers check the
# commands they need afterwards (ensure_tools).
apt_install() {
    local wanted=() package
    if ! command -v apt-get >/dev/null 2>&1; then
        warn "No apt-get here: install $* with your system's package manager."
        return 0
    fi
    if ! can_be_root; then
        warn "Not root and no passwordless sudo: install them yourself with: sudo apt-get install -y $*"
        return 0
    fi
    if [[ -z "$_APT_UPDATED" ]]; then
        say "apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq || warn "apt-get update failed; trying with the lists we have."
        _APT_UPDATED=1
    fi
    for package in "$@"; do
        if apt_has "$package"; then
            wanted+=("$package")
        else
            warn "apt has no package '$package' on this system (on Ubuntu, chromium comes as a snap: sudo snap install chromium)."
        fi
    done
    if [[ ${#wanted[@]} -gt 0 ]]; then
        say "apt-get install ${wanted[*]}"
        local log
        log="$(mktemp /tmp/self-billing-apt.XXXXXX)"
        if as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${wanted[@]}" \
                >"$log" 2>&1; then
            rm -f "$log"
        else
            tail -n 20 "$log" >&2
            warn "apt-get install ${wanted[*]} failed (log: $log); install them by hand: sudo apt-get install -y ${wanted[*]}"
        fi
    fi
}

# have_tool NAME: true when the tool is here. Names are commands on PATH, except `chromium` (also
# `chromium-browser`), `postgresql` (the server's initdb, which Debian keeps off PATH) and
# `playwright-driver` (Playwright's Node.js driver in .venv, which needs libatomic.so.1).
have_tool() {
    case "$1" in
        chromium) command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 ;;
        playwright-driver) .venv/bin/python -m playwright --version >/dev/null 2>&1 ;;
        postgresql) compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null ;;
        *) command -v "$1" >/dev/null 2>&1 ;;
    esac
}

# ensure_tools TOOL=PACKAGE...: install the packages of the tools that are missing, then check each
# tool again and name every one still missing with the command that gets it. Returns 1 when one is.
MISSING_TOOLS=()
ensure_tools() {
    local pair tool packages=()
    for pair in "$@"; do
        have_tool "${pair%%=*}" || packages+=("${pair#*=}")
    done
    if [[ ${#packages[@]} -gt 0 ]]; then
        say "System packages needed here: ${packages[*]}"
        apt_install "${packages[@]}"
    fi
    MISSING_TOOLS=()
    for pair in "$@"; do
        tool="${pair%%=*}"
        if ! have_tool "$tool"; then
            MISSING_TOOLS+=("$tool")
            warn "$tool is still missing: install it with: sudo apt-get install -y ${pair#*=}"
        fi
    done
    [[ ${#MISSING_TOOLS[@]} -eq 0 ]]
}

# The Python to build the virtual environment with: $PYTHON, else python3; 3.11 or newer.
pick_python() {
    local candidate="${PYTHON:-python3}"
    command -v "$candidate" >/dev/null 2>&1 || die "No $candidate found. Install Python 3.11 or newer (sudo apt-get install -y python3 python3-venv)."
    "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "$candidate is $("$candidate" -V 2>&1); Self-Billing needs Python 3.11 or newer (set PYTHON=/path/to/python3.11)."
    echo "$candidate"
}

# make_venv DIR: a virtual environment at DIR (kept when it already works), with a current pip.
make_venv() {
    local dir="$1" python
    python="$(pick_python)"
    if [[ -x "$dir/bin/python" ]] && "$dir/bin/python" -m pip --version >/dev/null 2>&1; then
        return 0
    fi
    rm -rf "$dir"
    if ! "$python" -m venv "$dir" 2>/dev/null; then
        rm -rf "$dir"
        local version
        version="$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
        warn "$python cannot make virtual environments yet (Debian keeps that in python3-venv)."
        apt_install "python${version}-venv" python3-venv
        "$python" -m venv "$dir" || die "Could not create $dir. Install the venv module: sudo apt-get install -y python3-venv"
    fi
    "$dir/bin/python" -m pip install -q --upgrade pip
}
