#!/usr/bin/env bash
# Benchmark: the issuer's own overhead, our Rust LoadGen next to the real
# LoadGen C++ (6.0.17), same settings, same machine, same run, against a SUT
# that answers every sample inside IssueQuery.
#
# usage: scripts/bench/loadgen_issue.sh [options]
#   --loadgen-src DIR   LoadGen sources: an mlcommons/inference checkout (or its
#                       loadgen/ directory). Default: the mlcommons-loadgen
#                       6.0.17 sdist from PyPI, fetched with pip into .cache/peers/
#   --qps "Q1 Q2 ..."   Server target QPS ladder
#                       (default: 1000 10000 100000 200000 300000 400000 450000
#                        500000 550000 600000 800000 1000000 2000000 4000000
#                        6000000 8000000;
#                        the top points need ~60 B (Rust) / ~350 B (C++) of RAM
#                        per query: 8M QPS x 5 s is 2.4 GB for Rust)
#   --duration-ms N     Server min_duration_ms (default 5000); min_query_count 100
#   --latency-ms N      Server target latency at p99 (default 10, ResNet-style)
#   --repeats N         runs per ladder point and implementation (default 3)
#   --offline-samples N Offline query size (default 4000000)
#   --out DIR           where run outputs go (default .cache/bench/loadgen_issue/<time>)
#   --quiet-cores X     before each run, wait (up to 120 s) until the machine
#                       uses less than X cores (default: don't wait)
# A ladder point is skipped for an implementation once it was INVALID in
# every repeat at three consecutive lower points. Prints a markdown table on stdout.
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$PWD"

VERSION="6.0.17"
src_arg=""
ladder="1000 10000 100000 200000 300000 400000 450000 500000 550000 600000 800000 1000000 2000000 4000000 6000000 8000000"
duration_ms=5000
latency_ms=10
repeats=3
offline_samples=4000000
out=""
quiet_cores=""
while [ $# -gt 0 ]; do
  case "$1" in
    --loadgen-src) src_arg="$2"; shift 2 ;;
    --qps) ladder="$2"; shift 2 ;;
    --duration-ms) duration_ms="$2"; shift 2 ;;
    --latency-ms) latency_ms="$2"; shift 2 ;;
    --repeats) repeats="$2"; shift 2 ;;
    --offline-samples) offline_samples="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --quiet-cores) quiet_cores="$2"; shift 2 ;;
    *) echo "loadgen_issue: unknown option $1" >&2; exit 2 ;;
  esac
done
out="${out:-$root/.cache/bench/loadgen_issue/$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$out"
log() { echo "loadgen_issue: $*" >&2; }

# --- LoadGen C++ sources ------------------------------------------------------
peers="$root/.cache/peers"
if [ -n "$src_arg" ]; then
  src="$(cd "$src_arg" && pwd)"
  [ -f "$src/loadgen/loadgen.cc" ] && src="$src/loadgen"
  [ -f "$src/loadgen.cc" ] || { echo "loadgen_issue: no loadgen.cc in $src_arg" >&2; exit 1; }
  # A checkout lacks the two files setup.py generates; write them into a
  # copy so the checkout stays untouched.
  copy="$peers/loadgen-cpp/src-checkout"
  mkdir -p "$copy/generated"
  # -p keeps mtimes, so unchanged sources are not recompiled.
  cp -p "$src"/*.cc "$src"/*.h "$src"/mlperf.conf "$copy/"
  python3 - "$copy" "$(cat "$src/VERSION.txt" 2>/dev/null || echo unknown)" <<'EOF'
import hashlib, pathlib, sys
d = pathlib.Path(sys.argv[1])

def write(path, text):  # only when changed, so make-like mtime checks hold
    if not path.exists() or path.read_text() != text:
        path.write_text(text)

conf = (d / "mlperf.conf").read_text()
conf = conf.replace("\\", "\\\\").replace('"', '\\"').replace("\n", '\\n"\n"')
write(d / "mlperf_conf.h", f'const char* mlperf_conf =\n"{conf}";\n')
# LoadGen parses Sha1OfFiles as "<sha1> <name>" lines (asserts on it).
sha1s = "\\n".join(
    f"{hashlib.sha1(f.read_bytes()).hexdigest()} {f.name}"
    for f in sorted(d.iterdir()) if f.suffix in (".cc", ".h"))
fns = {"LoadgenVersion": sys.argv[2].strip(), "LoadgenBuildDateLocal": "",
       "LoadgenBuildDateUtc": "", "LoadgenGitRevision": "", "LoadgenGitCommitDate": "",
       "LoadgenGitStatus": "", "LoadgenGitLog": "", "LoadgenSha1OfFiles": sha1s}
body = "".join(f'const std::string& {n}() {{ static const std::string s = "{v}"; return s; }}\n'
               for n, v in fns.items())
write(d / "generated" / "version_generated.cc",
      "#include <string>\nnamespace mlperf {\n" + body + "}\n")
EOF
  src="$copy"
else
  src="$peers/loadgen-sdist/mlcommons_loadgen-$VERSION"
  if [ ! -f "$src/loadgen.cc" ]; then
    log "fetching the mlcommons-loadgen $VERSION sdist from PyPI"
    mkdir -p "$peers/loadgen-sdist"
    python3 -m pip download --quiet --disable-pip-version-check --no-deps \
      --no-binary=:all: "mlcommons-loadgen==$VERSION" -d "$peers/loadgen-sdist" >&2
    tar xzf "$peers/loadgen-sdist/mlcommons_loadgen-$VERSION.tar.gz" -C "$peers/loadgen-sdist"
  fi
fi

# --- build both ---------------------------------------------------------------
build="$peers/loadgen-cpp/build-$(echo "$src" | md5sum | cut -c1-8)"
mkdir -p "$build"
cxx="${CXX:-g++}"
cxxflags="-std=c++14 -O2"
objs=()
pids=()
for f in early_stopping issue_query_controller loadgen logging test_settings_internal \
  utils version results generated/version_generated; do
  o="$build/$(basename "$f").o"
  objs+=("$o")
  if [ ! -f "$o" ] || [ "$src/$f.cc" -nt "$o" ]; then
    $cxx $cxxflags -I"$src" -c "$src/$f.cc" -o "$o" & pids+=($!)
  fi
done
for p in "${pids[@]}"; do wait "$p"; done
driver="$root/scripts/bench/loadgen_cpp/instant_sut.cc"
cpp_bin="$build/instant_sut"
if [ ! -x "$cpp_bin" ] || [ "$driver" -nt "$cpp_bin" ] || [ -n "$(find "$build" -name '*.o' -newer "$cpp_bin")" ]; then
  log "building the LoadGen C++ driver ($cxx $cxxflags)"
  $cxx $cxxflags -I"$src" "$driver" "${objs[@]}" -o "$cpp_bin" -lpthread
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
log "building the Rust example (release)"
cargo build --release --quiet -p loadgen --example issue_bench
rust_bin="$CARGO_TARGET_DIR/release/examples/issue_bench"

# --- run ----------------------------------------------------------------------
results="$out/results.jsonl"
report="$root/scripts/bench/loadgen_cpp/report.py"
: >"$results"
load() { cut -d' ' -f1 /proc/loadavg; }

quiet() { [ -z "$quiet_cores" ] || python3 "$report" wait-quiet "$quiet_cores" 120; }

run_rust() { # scenario qps duration_ms min_queries
  local l0 j
  quiet
  l0=$(load)
  j=$(python3 "$report" measure "$rust_bin" "$1" "$2" "$3" "$4" "$latency_ms")
  python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d["load_before"]=float(sys.argv[2]); d["load_after"]=float(sys.argv[3]); print(json.dumps(d))' \
    "$j" "$l0" "$(load)" >>"$results"
}

run_cpp() { # scenario qps duration_ms min_queries tag
  local l0 dir j
  quiet
  l0=$(load)
  dir="$out/cpp-$5"
  mkdir -p "$dir"
  j=$(python3 "$report" measure "$cpp_bin" "$1" "$2" "$3" "$4" "$dir" "$latency_ms")
  python3 "$report" parse-cpp "$dir" "$j" "$1" "$2" "$l0" "$(load)" >>"$results"
}

# The last field of the newest result line for this impl: was it VALID?
last_valid() { python3 -c 'import json,sys
rows=[json.loads(l) for l in open(sys.argv[1])]
rows=[r for r in rows if r["impl"]==sys.argv[2] and r["scenario"]=="Server" and r["target_qps"]==float(sys.argv[3])]
print(int(any(r["valid"] for r in rows)))' "$results" "$1" "$2"; }

log "machine: $(nproc) cores, $(uname -srm); load $(load); output in $out"
declare -A invalid_points=([rust]=0 [cpp]=0)
for qps in $ladder; do
  for impl in rust cpp; do
    if [ "${invalid_points[$impl]}" -ge 3 ]; then continue; fi
    for r in $(seq 1 "$repeats"); do
      log "server $impl qps=$qps run $r/$repeats (load $(load))"
      if [ "$impl" = rust ]; then
        run_rust server "$qps" "$duration_ms" 100
      else
        run_cpp server "$qps" "$duration_ms" 100 "server-$qps-$r"
      fi
    done
    if [ "$(last_valid "$impl" "$qps")" = 1 ]; then
      invalid_points[$impl]=0
    else
      invalid_points[$impl]=$((invalid_points[$impl] + 1))
    fi
  done
done
# Offline: expected QPS chosen so that 1.1 * 1 s * qps = the requested size.
offline_qps=$(python3 -c "print(int($offline_samples) / 1.1)")
for r in $(seq 1 "$repeats"); do
  log "offline rust run $r/$repeats"
  run_rust offline "$offline_qps" 1000 1
  log "offline cpp run $r/$repeats"
  run_cpp offline "$offline_qps" 1000 1 "offline-$r"
done

echo "machine: $(nproc) cores, $(uname -srm); LoadGen C++ $VERSION built with $cxx $cxxflags from $src"
echo "command: scripts/bench/loadgen_issue.sh --qps \"$ladder\" --duration-ms $duration_ms --latency-ms $latency_ms --repeats $repeats --offline-samples $offline_samples${quiet_cores:+ --quiet-cores $quiet_cores}"
echo "raw results: $results"
echo
python3 "$report" table "$results"
