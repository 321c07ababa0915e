#!/usr/bin/env bash
# lenga's one entry point for users.
#
#   ./spark-submit.sh demo [--lake DIR]          embedded default: Tansu + simulated night + Spark + Delta
#   ./spark-submit.sh test [PYTEST ARGS]         the test suite
#   ./spark-submit.sh bench --alerts N --json F  benchmark job
#   ./spark-submit.sh JOB [ARGS]                 any job in jobs/ (stream, simulate, ...)
#   ./spark-submit.sh --master spark://H:P JOB   the same job on a cluster (code shipped as a zip,
#                                                connector jars fetched with --packages)
#   ./spark-submit.sh setup                      only create/refresh the local venv
#
# Locally it runs on local[*] with the project's venv as PYSPARK_PYTHON; it creates that venv on first
# use from requirements.txt. pyspark ships only as a 450 MB sdist: its built wheel is kept in
# $LENGA_WHEEL_CACHE so later installs (CI, new venvs) skip the rebuild.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${LENGA_VENV:-$ROOT/.venv}"
PY="${LENGA_PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
WHEEL_CACHE="${LENGA_WHEEL_CACHE:-$HOME/.cache/lenga/wheels}"
SPARK_VERSION=4.2.0
SCALA_BINARY=2.13
DELTA_VERSION=4.4.1
# Connector jars fetched by spark-submit on a cluster; LENGA_SPARK_PACKAGES="" submits without them
# (lenga then uses its Python Kafka source and the delta-rs backend, as in local runs).
PACKAGES="${LENGA_SPARK_PACKAGES-org.apache.spark:spark-sql-kafka-0-10_${SCALA_BINARY}:${SPARK_VERSION},org.apache.spark:spark-avro_${SCALA_BINARY}:${SPARK_VERSION},io.delta:delta-spark_${SCALA_BINARY}:${DELTA_VERSION}}"

log() { printf '[lenga] %s\n' "$*" >&2; }

ensure_venv() {
  local stamp="$VENV/.lenga-requirements"
  local want
  want="$(cat "$ROOT/requirements.txt" "$ROOT/requirements-dev.txt" "$ROOT/setup.py" | sha1sum | cut -d' ' -f1)"
  if [[ -x "$VENV/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    return
  fi
  log "installing the pinned stack into $VENV (first run only; pyspark's wheel is cached in $WHEEL_CACHE)"
  [[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip wheel setuptools
  mkdir -p "$WHEEL_CACHE"
  local spark_req
  spark_req="$(grep -E '^pyspark==' "$ROOT/requirements.txt")"
  if ! ls "$WHEEL_CACHE"/pyspark-"${spark_req#pyspark==}"-*.whl >/dev/null 2>&1; then
    log "building the $spark_req wheel once (a few minutes)"
    "$VENV/bin/python" -m pip wheel --quiet --no-deps -w "$WHEEL_CACHE" "$spark_req"
  fi
  "$VENV/bin/python" -m pip install --quiet --find-links "$WHEEL_CACHE" -r "$ROOT/requirements-dev.txt"
  "$VENV/bin/python" -m pip install --quiet --no-deps --config-settings editable_mode=compat -e "$ROOT"
  "$VENV/bin/python" -m pip check
  echo "$want" >"$stamp"
  sitecustomize
  jvm_archive
}

# Every Python process Spark starts from this venv (its data-source planners too) imports pyspark
# from the installed package, with cached bytecode, instead of compiling it from pyspark.zip
# (lenga/io/pyspark_path.py). Never replaces a sitecustomize that lenga did not write.
SITECUSTOMIZE_MARK="# written by lenga's spark-submit.sh"
sitecustomize() {
  local site target
  site="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  target="$site/sitecustomize.py"
  if [[ -f "$target" ]] && ! grep -qF "$SITECUSTOMIZE_MARK" "$target"; then
    log "$target exists and is not lenga's: left as it is (pyspark's planners compile from pyspark.zip)"
    return
  fi
  cat >"$target" <<PY
$SITECUSTOMIZE_MARK: lenga.io.pyspark_path.use_installed_pyspark
try:
    from lenga.io.pyspark_path import use_installed_pyspark
except ImportError:  # lenga not installed (yet) in this venv
    pass
else:
    use_installed_pyspark()
PY
}

# The local Spark JVM's class archive (lenga/io/jvm_archive.py: sessions start ~2 s sooner).
# Best effort: without it the jobs run the same, only slower to start.
jvm_archive() {
  "$VENV/bin/python" "$ROOT/jobs/jvm_archive.py" || log "no JVM class archive (jobs start slower)"
}

main() {
  local master=""
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --master) master="$2"; shift 2 ;;
      --cluster) master="${LENGA_MASTER:?--cluster needs LENGA_MASTER (a master URL)}"; shift ;;
      *) break ;;
    esac
  done
  local job="${1:-}"
  [[ -n "$job" ]] || { sed -n '2,13p' "$0"; exit 2; }
  shift

  ensure_venv
  export PYSPARK_PYTHON="$VENV/bin/python"
  export PYSPARK_DRIVER_PYTHON="$VENV/bin/python"
  export SPARK_LOCAL_IP="${SPARK_LOCAL_IP:-127.0.0.1}"
  export LENGA_CONF_DIR="${LENGA_CONF_DIR:-$ROOT/conf}"
  export PATH="$VENV/bin:$PATH"

  case "$job" in
    setup) sitecustomize; jvm_archive; log "venv ready: $VENV"; return ;;
    test) cd "$ROOT" && exec "$VENV/bin/python" -m pytest "$@" ;;
    bench) job=benchmark ;;
  esac
  local script="$ROOT/jobs/${job//-/_}.py"
  [[ -f "$script" ]] || { log "unknown job '$job' (no $script)"; exit 2; }

  if [[ -z "$master" ]]; then
    cd "$ROOT" && exec "$VENV/bin/python" "$script" "$@"
  fi
  # Cluster: ship the code as a zip and let Spark fetch the connector jars.
  local dist="$ROOT/build/dist"
  mkdir -p "$dist"
  "$VENV/bin/python" - "$ROOT" "$dist/lenga.zip" <<'PY'
import pathlib, sys, zipfile
root, target = pathlib.Path(sys.argv[1]), sys.argv[2]
with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
    for package in ("lenga", "udfs", "jobs", "models"):
        for path in sorted((root / package).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                archive.write(path, path.relative_to(root))
PY
  # Python data sources are planned (offsets, partitions, commits) in Python workers of the driver's
  # JVM; those load neither the executors' --py-files includes nor the driver process's PYTHONPATH,
  # only the JVM's environment: give them the same zip there.
  export PYTHONPATH="$dist/lenga.zip${PYTHONPATH:+:$PYTHONPATH}"
  local connectors=()
  if [[ -n "$PACKAGES" ]]; then
    connectors=(--packages "$PACKAGES"
      --conf spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension
      --conf spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog)
  fi
  # From the repository root, as locally: relative paths (lake, conf/catalogs.yaml entries, model
  # directories) mean the same in both modes.
  cd "$ROOT"
  exec "$VENV/bin/spark-submit" --master "$master" "${connectors[@]}" \
    --conf "spark.pyspark.python=${LENGA_CLUSTER_PYTHON:-$PYSPARK_PYTHON}" \
    --py-files "$dist/lenga.zip" "$script" "$@"
}

main "$@"
