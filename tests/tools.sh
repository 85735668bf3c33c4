# Installs the tools the tests use into target/test-tools (sourced by tests/run.sh).
# Python: an isolated venv with jsonpatch (an RFC 6902 implementation
# independent of ours, used to apply the patches the server returns).

TOOLS_DIR="${TOOLS_DIR:-$PWD/target/test-tools}"

ensure_python_tools() {
  local venv="$TOOLS_DIR/venv"
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import jsonpatch, yaml' 2>/dev/null; then
    echo "== installing Python test tools into $venv"
    mkdir -p "$TOOLS_DIR"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check jsonpatch==1.33 pyyaml==6.0.2
  fi
  export REGENT_TEST_PYTHON="$venv/bin/python"
}
