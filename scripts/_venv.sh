# shellcheck shell=bash
# Shared by scripts/demo and scripts/test (sourced, not run): find a Python >= 3.11, create or
# reuse the virtualenv, and install the project into it only when something changed.
#
# Environment:
#   PYTHON       interpreter for a new venv (default: the first of python3, python3.13,
#                python3.12, python3.11 that is >= 3.11). A venv of another version is rebuilt.
#   VENV         venv directory (default: .venv)
#   DJANGO_SPEC  pip requirement for Django (default: Django>=5.2,<5.3)

VENV="${VENV:-.venv}"
DJANGO_SPEC="${DJANGO_SPEC:-Django>=5.2,<5.3}"

if [[ -t 1 ]]; then _bold=$'\033[1m' _red=$'\033[31m' _green=$'\033[32m' _off=$'\033[0m'
else _bold='' _red='' _green='' _off=''; fi
say() { printf '%s==> %s%s\n' "$_bold" "$*" "$_off"; }
red() { printf '%s%s%s\n' "$_red" "$*" "$_off"; }
green() { printf '%s%s%s\n' "$_green" "$*" "$_off"; }
die() { red "error: $*" >&2; exit 1; }

_py_ok='import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'
_py_ver='import sys; print("%d.%d" % sys.version_info[:2])'

# Prints the absolute path of a Python >= 3.11 (PYTHON if set).
find_python() {
    local candidate
    local -a candidates=(python3 python3.13 python3.12 python3.11)
    [[ -n "${PYTHON:-}" ]] && candidates=("$PYTHON")
    for candidate in "${candidates[@]}"; do
        if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c "$_py_ok" 2>/dev/null; then
            "$candidate" -c 'import sys; print(sys.executable)'
            return 0
        fi
    done
    if [[ -n "${PYTHON:-}" ]]; then
        die "PYTHON=$PYTHON is not a runnable Python >= 3.11."
    fi
    die "no Python >= 3.11 found (tried ${candidates[*]}); install one or set PYTHON=/path/to/python3."
}

# Creates $VENV (or reuses it) and installs the project with the given extras ("" or "test").
ensure_venv() {
    local extras="$1" python want have spec stamp key
    if [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c "$_py_ok" 2>/dev/null; then
        if [[ -n "${PYTHON:-}" ]]; then
            python="$(find_python)"
            want="$("$python" -c "$_py_ver")"
            have="$("$VENV/bin/python" -c "$_py_ver")"
            if [[ "$want" != "$have" ]]; then
                say "$VENV has Python $have, PYTHON is $want: rebuilding it"
                [[ -f "$VENV/pyvenv.cfg" ]] || die "$VENV is not a virtualenv; not deleting it."
                rm -rf "$VENV"
            fi
        fi
    elif [[ -e "$VENV" ]]; then
        [[ -f "$VENV/pyvenv.cfg" ]] || die "$VENV exists and is not a virtualenv; set VENV=..."
        say "$VENV is broken or older than Python 3.11: rebuilding it"
        rm -rf "$VENV"
    fi
    if [[ ! -x "$VENV/bin/python" ]]; then
        python="$(find_python)"
        say "Creating $VENV with $python ($("$python" -c "$_py_ver"))"
        "$python" -m venv "$VENV" || die "'$python -m venv' failed; on Debian/Ubuntu install the \
python3-venv package (apt-get install python3-venv)."
    fi

    spec=".${extras:+[$extras]}"
    # Reinstall only when pyproject.toml, the Django spec, the interpreter or the extras change.
    # The stamp's first line is the key; the others list the extras installed under that key.
    stamp="$VENV/.django-dbos-installed"
    key="$("$VENV/bin/python" - "$DJANGO_SPEC" <<'PY'
import hashlib, sys
digest = hashlib.sha256(open("pyproject.toml", "rb").read())
digest.update(repr((sys.argv[1], sys.version)).encode())
print(digest.hexdigest())
PY
)"
    if [[ -f "$stamp" && "$(head -n 1 "$stamp")" == "$key" ]]; then
        grep -qx -- "${extras:-base}" "$stamp" && return 0
    else
        printf '%s\nbase\n' "$key" > "$stamp.new"   # every install includes the base package
        rm -f "$stamp"
    fi
    say "Installing -e '$spec' '$DJANGO_SPEC' into $VENV (a minute or two the first time)"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$spec" "$DJANGO_SPEC"
    if [[ -f "$stamp" ]]; then cp "$stamp" "$stamp.new"; fi
    echo "${extras:-base}" >> "$stamp.new"
    mv "$stamp.new" "$stamp"
}
