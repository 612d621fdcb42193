#!/usr/bin/env bash
# Run the pinned mergekit release's own test suite twice: with deltahub's plugin registered (the
# .pth hook adds gam, knots, tsv to mergekit's registry) and with it off (DELTAHUB_MERGEKIT_DISABLE=1),
# and print both counts. mergekit's suite loops over every registered method in places (e.g.
# test_state_dict_methods_accept_strided_weights_without_mutation), so this checks that the plugin's
# methods meet mergekit's contract. A check to run by hand or as a separate CI step; nothing is
# vendored: the tests come from the release's sdist, the code under test is the installed mergekit.
#
# Usage: scripts/mergekit-suite.sh [pytest args]    (PYTHON=... to pick the interpreter; needs PyPI)
# Exit status: 0 when the plugin adds no failure (same failed/error counts in both runs), else 1.
# The 0.1.5 sdist ships the test modules but not tests/common.py, which six of them import
# (test_basic_merges, test_chat_template, test_embedding_truncation, test_merge_dtypes,
# test_tokenizer, test_vocabulary_axis): without it those are collection errors in both runs (the
# rest runs, --continue-on-collection-errors). MERGEKIT_TESTS_COMMON=path/to/common.py (from a
# checkout of the mergekit repository) supplies it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
VERSION="$(sed -n 's/^mergekit==//p' constraints.txt)"
[ -n "$VERSION" ] || { echo "error: no mergekit pin in constraints.txt" >&2; exit 2; }
INSTALLED="$("$PY" -c 'import importlib.metadata as m; print(m.version("mergekit"))')"
[ "$INSTALLED" = "$VERSION" ] || { echo "error: mergekit $INSTALLED is installed, the pin is $VERSION" >&2; exit 2; }

TMP="$(mktemp -d -t mergekit-suite.XXXXXX)"
trap 'rm -rf "$TMP"' EXIT
"$PY" -m pip download -q --no-deps --no-binary :all: "mergekit==$VERSION" -d "$TMP" >"$TMP/pip.log" 2>&1 \
  || { cat "$TMP/pip.log" >&2; exit 2; }
tar -xzf "$TMP"/mergekit-"$VERSION".tar.gz -C "$TMP"
# only the tests and the pytest settings: its tests import `tests.common`, and the sdist folder on
# sys.path would shadow the installed mergekit with the sdist's own copy
SRC="$TMP/suite"
mkdir "$SRC"
cp -r "$TMP/mergekit-$VERSION/tests" "$TMP/mergekit-$VERSION/pyproject.toml" "$SRC/"
if [ -n "${MERGEKIT_TESTS_COMMON:-}" ]; then
  cp "$MERGEKIT_TESTS_COMMON" "$SRC/tests/common.py"
fi

run() {  # $1 = label; the rest = env assignments for this run
  local label="$1"; shift
  (cd "$SRC" && env "$@" "$PY" -c 'import mergekit, mergekit.merge_methods.registry as r
print("   mergekit from", mergekit.__file__.rsplit("/", 2)[0], "| plugin methods registered:",
      sorted({"gam", "knots", "tsv"} & {m.spec.name for m in r.registered_methods()}) or "none")')
  (cd "$SRC" && env "$@" "$PY" -m pytest -q -p no:cacheprovider --continue-on-collection-errors tests \
      "${PYTEST_ARGS[@]}" \
      > "$TMP/$label.log" 2>&1) || true
  local summary
  summary="$(grep -E '^(=+ )?[0-9]+ (passed|failed)|(passed|failed|error).* in [0-9.]+s' "$TMP/$label.log" | tail -1)"
  printf '%-16s %s\n' "$label:" "$summary"
  grep -E '^(FAILED|ERROR) ' "$TMP/$label.log" | sed 's/^/    /' || true
}
count() { grep -oE "[0-9]+ $2" "$TMP/$1.log" | tail -1 | grep -oE '^[0-9]+' || echo 0; }

PYTEST_ARGS=("$@")
echo "mergekit $VERSION test suite (sdist), installed package under test:"
run "plugin" "DELTAHUB_MERGEKIT_DISABLE="
run "plugin-disabled" "DELTAHUB_MERGEKIT_DISABLE=1"
bad_on=$(( $(count plugin failed) + $(count plugin error) ))
bad_off=$(( $(count plugin-disabled failed) + $(count plugin-disabled error) ))
if [ "$bad_on" -ne "$bad_off" ]; then
  echo "the plugin changes mergekit's suite: $bad_on failed/errors with it, $bad_off without" >&2
  exit 1
fi
echo "same failures with and without the plugin ($bad_on)"
