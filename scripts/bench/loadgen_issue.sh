#!/usr/bin/env bash
# Benchmark: the issuer's own overhead, our Rust LoadGen next to the real
# LoadGen C++ (6.0.17), same settings, same machine, same run, against a SUT
# that answers every sample inside IssueQuery.
#
# Like for like (issue: honest benchmarks):
# - LoadGen C++ is built as its release is (the wheel's setup.py: -std=c++14
#   -O3, with Python's -DNDEBUG), and once more linked with jemalloc
#   ("cpp-jemalloc") when libjemalloc is installed (Debian: libjemalloc-dev);
# - timer slack: both sides run with 1 ns, set explicitly (the Rust issuer
#   sets it on its thread; the C++ driver sets it before StartTest and
#   LoadGen's threads inherit it);
# - clocks: each side reads the clock its own way, as it ships: LoadGen C++
#   calls std::chrono::high_resolution_clock (clock_gettime), the Rust side
#   reads the CPU's time-stamp counter where the kernel's clocksource is tsc
#   (about 20 ns a reading against 40 here; both read twice per query). The
#   machine line says which the Rust side used (issue_bench's clock_source);
# - the Rust side runs the way `harness run` does, less HTTP
#   (harness/examples/issue_bench.rs): LoadGen's log files through its log
#   writer thread, and records.jsonl (one line per sample, about 113 B in
#   Server, 96 B in Offline, whose lines leave out scheduled_ns = 0)
#   through the run observer. LoadGen C++ posts an entry per sample to its
#   logger thread (which collects the latencies) and keeps no per-sample
#   file: the Rust side writes more. Neither side waits for the disk inside
#   the timed window (LoadGen C++ never syncs its logs; records.jsonl is
#   synced right after the window, as `harness run` syncs it before it
#   reports, and that time is shown beside the table);
# - both answer in chunks of at most 4096 samples from a buffer allocated
#   before the test; both are timed as whole tests (StartTest / start_test,
#   logs closed inside the window);
# - memory per query is compared at rates both sustain.
# Method: every rung runs each implementation --repeats times, interleaved
# (rust, cpp, cpp-jemalloc, rust, ...); a run during which other processes
# used more than --busy-cores cores is flagged busy, kept aside and repeated
# (up to twice); a rung counts as VALID for an implementation when every
# repeat is. The ladder finds each implementation's bracket, then
# --bisect steps of geometric bisection narrow it. Medians with [min-max].
#
# usage: scripts/bench/loadgen_issue.sh [options]
#   --loadgen-src DIR   LoadGen sources: an mlcommons/inference checkout (or its
#                       loadgen/ directory). Default: the mlcommons-loadgen
#                       6.0.17 sdist from PyPI, fetched with pip into .cache/peers/
#   --qps "Q1 Q2 ..."   Server target QPS ladder (default: 10000 100000 300000
#                       1000000 3000000 6000000 6600000: the top rung,
#                       the most a 30 s test may schedule (the Rust
#                       LoadGen's MAX_SCHEDULED_SAMPLES, 200M samples), is
#                       there so the Rust side's limit is bracketed from
#                       above where the host lets it pass 6M; a rung past
#                       that cap is not run); the top points need ~60 B (Rust) /
#                       ~310 B (C++) of RAM per query and, on the Rust side,
#                       ~113 B of disk per query for records.jsonl: a rung
#                       that does not fit the machine's free memory and disk
#                       is not run, ends that implementation's ladder, and is
#                       listed under the table (3M QPS x 30 s: ~28 GB for C++);
#                       at that much disk per query, the Rust side may meet
#                       the disk's write bandwidth first above ~5M QPS (it
#                       writes every record; LoadGen C++ writes none)
#   --bisect N          bisection steps after the ladder (default 4)
#   --duration-ms N     Server min_duration_ms (default 30000); min_query_count 100
#   --latency-ms N      Server target latency at p99 (default 10, ResNet-style)
#   --repeats N         runs per rung and implementation (default 3)
#   --offline-samples N Offline query size (default 4000000)
#   --impls "rust cpp cpp-jemalloc"  implementations to run (default: all
#                       that build here). With rust, Offline also runs
#                       rust-norecords (the same binary without records.jsonl,
#                       a diagnostic) and times dd writing and syncing as many
#                       bytes as the Rust run's records.jsonl (the disk's floor).
#                       Naming rust-norecords here runs it in Server too: the
#                       issuer's own limit where the disk (or, on a VM, the
#                       host's disk emulation taking the guest's CPUs: see the
#                       steal column) limits the compared path
#   --out DIR           where run outputs go (default .cache/bench/loadgen_issue/<time>)
#   --quiet-cores X     before each run, wait (up to 120 s) until the machine
#                       uses less than X cores (default: don't wait)
#   --busy-cores X      flag a run busy when other processes used more than
#                       X cores during it (default 0.25)
# Prints a markdown table on stdout. Duration: about (rungs + bisect steps) x
# repeats x impls x (duration + ~5 s), plus Offline; the default on a quiet
# 2-core box is about 40 minutes. Needs g++, python3, pip (for the sdist).
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$PWD"

VERSION="6.0.17"
src_arg=""
ladder="10000 100000 300000 1000000 3000000 6000000 6600000"
bisect=4
duration_ms=30000
latency_ms=10
repeats=3
offline_samples=4000000
out=""
quiet_cores=""
busy_cores=0.25
impls=""
while [ $# -gt 0 ]; do
  case "$1" in
    --loadgen-src) src_arg="$2"; shift 2 ;;
    --qps) ladder="$2"; shift 2 ;;
    --bisect) bisect="$2"; shift 2 ;;
    --duration-ms) duration_ms="$2"; shift 2 ;;
    --latency-ms) latency_ms="$2"; shift 2 ;;
    --repeats) repeats="$2"; shift 2 ;;
    --offline-samples) offline_samples="$2"; shift 2 ;;
    --impls) impls="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --quiet-cores) quiet_cores="$2"; shift 2 ;;
    --busy-cores) busy_cores="$2"; shift 2 ;;
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

# --- build --------------------------------------------------------------------
build="$peers/loadgen-cpp/build-O3-$(echo "$src" | md5sum | cut -c1-8)"
mkdir -p "$build"
cxx="${CXX:-g++}"
# LoadGen's wheel: setup.py's extra_compile_args plus Python's -DNDEBUG.
cxxflags="-std=c++14 -O3 -DNDEBUG"
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
link() { # binary extra-libs...
  local bin="$1"; shift
  if [ ! -x "$bin" ] || [ "$driver" -nt "$bin" ] || [ -n "$(find "$build" -name '*.o' -newer "$bin")" ]; then
    log "building $(basename "$bin") ($cxx $cxxflags $*)"
    $cxx $cxxflags -I"$src" "$driver" "${objs[@]}" -o "$bin" -lpthread "$@"
  fi
}
link "$build/instant_sut"
declare -A bins=([cpp]="$build/instant_sut")
have_jemalloc=0
if echo 'int main(){}' | $cxx -x c++ - -o "$build/jemalloc-probe" -ljemalloc 2>/dev/null; then
  link "$build/instant_sut_jemalloc" -ljemalloc
  bins[cpp-jemalloc]="$build/instant_sut_jemalloc"
  have_jemalloc=1
else
  log "libjemalloc is not installed: no cpp-jemalloc variant (Debian: apt-get install libjemalloc-dev)"
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
log "building the Rust example (release)"
cargo build --release --quiet -p harness --example issue_bench
bins[rust]="$CARGO_TARGET_DIR/release/examples/issue_bench"
# Offline only, a diagnostic beside the real path: the same binary without
# records.jsonl (ISSUE_RECORDS=off), to show what the records cost.
bins[rust-norecords]="$out/issue_bench_norecords"
printf '#!/bin/sh\nISSUE_RECORDS=off exec "%s" "$@"\n' "${bins[rust]}" >"${bins[rust-norecords]}"
chmod +x "${bins[rust-norecords]}"
if [ -z "$impls" ]; then
  impls="rust cpp"
  [ $have_jemalloc = 0 ] || impls="$impls cpp-jemalloc"
fi
for impl in $impls; do
  [ -n "${bins[$impl]:-}" ] || { echo "loadgen_issue: no build for $impl" >&2; exit 2; }
done

# --- run ----------------------------------------------------------------------
results="$out/results.jsonl"
busy_results="$out/results-busy.jsonl"
report="$root/scripts/bench/loadgen_cpp/report.py"
: >"$results"
: >"$busy_results"
load() { cut -d' ' -f1 /proc/loadavg; }
quiet() { [ -z "$quiet_cores" ] || python3 "$report" wait-quiet "$quiet_cores" 120; }

# run_one IMPL SCENARIO QPS DURATION_MS MIN_QUERIES TAG: one run, repeated
# (up to twice) while other processes were busy during it; busy attempts go
# to results-busy.jsonl, the kept run to results.jsonl.
run_one() {
  local impl=$1 scenario=$2 qps=$3 dur=$4 minq=$5 tag=$6 attempt l0 dir j row
  for attempt in 1 2 3; do
    quiet
    l0=$(load)
    dir="$out/$impl-$tag-a$attempt"
    mkdir -p "$dir"
    j=$(python3 "$report" measure "${bins[$impl]}" "$scenario" "$qps" "$dur" "$minq" "$dir" "$latency_ms")
    row=$(python3 "$report" parse "$impl" "$dir" "$j" "$scenario" "$qps" "$l0" "$(load)" "$busy_cores" "$attempt")
    # Run outputs (records, detail logs) take gigabytes at high rates.
    rm -rf "$dir"
    if [ "$attempt" -lt 3 ] && python3 -c 'import json,sys; sys.exit(0 if json.loads(sys.argv[1])["busy"] else 1)' "$row"; then
      echo "$row" >>"$busy_results"
      log "  busy run (others used $(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["others_cpu_cores"])' "$row") cores): repeating"
      continue
    fi
    echo "$row" >>"$results"
    return
  done
}

# rung QPS IMPLS...: every impl at QPS, repeats interleaved.
rung() {
  local qps=$1 r impl
  shift
  for r in $(seq 1 "$repeats"); do
    for impl in "$@"; do
      log "server $impl qps=$qps run $r/$repeats (load $(load))"
      run_one "$impl" server "$qps" "$duration_ms" 100 "server-$qps-$r"
    done
  done
}

valid_at() { python3 "$report" valid-at "$results" "$1" "$2"; }

# fits IMPL QPS: whether a Server run at QPS fits this machine. A run that
# cannot fit is not run (and not counted as INVALID): it would be killed by
# the kernel or end with a full disk, as the 3M QPS rung did once (the Rust
# side's records.jsonl is ~125 B per query, 11 GB at 3M QPS x 30 s). Memory
# per query from measured peaks with margin: Rust ~37 B (36.9 B at 6M QPS x
# 30 s), LoadGen C++ ~310 B
# (9.3 GB at 1M QPS x 30 s), with jemalloc ~250 B.
declare -A mem_bpq=([rust]=60 [rust-norecords]=60 [cpp]=400 [cpp-jemalloc]=330)
declare -A disk_bpq=([rust]=140 [rust-norecords]=0 [cpp]=0 [cpp-jemalloc]=0)
skipped="$out/skipped.txt"
: >"$skipped"
# The cap itself, read from where the library defines it (so the two cannot
# drift apart).
schedule_cap=$(sed -n 's/^pub const MAX_SCHEDULED_SAMPLES: u64 = \([0-9_]*\);$/\1/p' \
  "$root/loadgen/src/settings.rs" | tr -d _)
[ -n "$schedule_cap" ] || { echo "loadgen_issue: MAX_SCHEDULED_SAMPLES not found in loadgen/src/settings.rs" >&2; exit 2; }
fits() {
  local impl=$1 qps=$2 queries mem_need disk_need mem_have disk_have
  queries=$(python3 -c "print(int($qps * $duration_ms / 1000))")
  mem_need=$(( queries * ${mem_bpq[$impl]} ))
  disk_need=$(( queries * ${disk_bpq[$impl]} + (1 << 30) ))
  mem_have=$(( $(awk '/MemAvailable/ {print $2}' /proc/meminfo) * 1024 ))
  disk_have=$(( $(df -Pk "$out" | awk 'NR==2 {print $4}') * 1024 ))
  # The Rust LoadGen refuses a performance phase of more than
  # MAX_SCHEDULED_SAMPLES samples: such a rung would end the script on its
  # error, not measure anything.
  if [[ $impl == rust* ]] && [ "$queries" -gt "$schedule_cap" ]; then
    echo "- $impl at $qps QPS not run: $queries samples in $duration_ms ms is more than the $schedule_cap one performance phase may schedule" >>"$skipped"
    log "  $impl at $qps QPS is over the schedule cap: not run (see the table's notes)"
    return 1
  fi
  if [ "$mem_need" -gt "$mem_have" ] || [ "$disk_need" -gt "$disk_have" ]; then
    echo "- $impl at $qps QPS not run: it needs about $((mem_need >> 30)) GiB of memory and $((disk_need >> 30)) GiB of disk; the machine had $((mem_have >> 30)) GiB and $((disk_have >> 30)) GiB free" >>"$skipped"
    log "  $impl at $qps QPS does not fit this machine: not run (see the table's notes)"
    return 1
  fi
}

log "machine: $(nproc) cores, $(uname -srm); load $(load); output in $out"
declare -A failed_points=()
for impl in $impls; do failed_points[$impl]=0; done
for qps in $ladder; do
  alive=()
  for impl in $impls; do
    # Two failing rungs in a row end an implementation's ladder.
    [ "${failed_points[$impl]}" -ge 2 ] && continue
    # A rung that does not fit ends the ladder, unmeasured.
    if fits "$impl" "$qps"; then alive+=("$impl"); else failed_points[$impl]=2; fi
  done
  [ ${#alive[@]} -gt 0 ] || break
  rung "$qps" "${alive[@]}"
  for impl in "${alive[@]}"; do
    if [ "$(valid_at "$impl" "$qps")" = 1 ]; then failed_points[$impl]=0
    else failed_points[$impl]=$((failed_points[$impl] + 1)); fi
  done
done
# Bisection: each step runs every impl at the geometric middle of its own
# bracket (highest rung VALID in every repeat, lowest rung above it that was
# not), interleaved like the ladder.
for step in $(seq 1 "$bisect"); do
  declare -A mids=()
  for impl in $impls; do mids[$impl]=$(python3 "$report" next-rung "$results" "$impl"); done
  for r in $(seq 1 "$repeats"); do
    for impl in $impls; do
      [ -n "${mids[$impl]}" ] || continue
      log "bisect $step $impl qps=${mids[$impl]} run $r/$repeats (load $(load))"
      run_one "$impl" server "${mids[$impl]}" "$duration_ms" 100 "bisect-${mids[$impl]}-$r"
    done
  done
  unset mids
done
# Offline: expected QPS chosen so that 1.1 * 1 s * qps = the requested size.
offline_qps=$(python3 -c "print(int($offline_samples) / 1.1)")
offline_impls="$impls"
case " $impls " in
  *" rust-norecords "*) ;;
  *" rust "*) offline_impls="$impls rust-norecords" ;;
esac
for r in $(seq 1 "$repeats"); do
  for impl in $offline_impls; do
    log "offline $impl run $r/$repeats"
    run_one "$impl" offline "$offline_qps" 1000 1 "offline-$r"
    # The disk's share: as many bytes as the Rust run's records.jsonl,
    # written and synced by dd on the same filesystem.
    if [ "$impl" = rust ]; then
      quiet
      python3 "$report" disk-floor "$results" "$out/disk-floor.bin" "$(load)"
    fi
  done
done

rust_clock=$(python3 -c 'import json,sys
for line in open(sys.argv[1]):
    row = json.loads(line)
    if row.get("clock_source"):
        print(row["clock_source"]); break
else:
    print("not recorded")' "$results" 2>/dev/null || echo "not recorded")
echo "machine: $(nproc) cores, $(uname -srm); LoadGen C++ $VERSION built with $cxx $cxxflags$([ $have_jemalloc = 1 ] && echo ' (cpp-jemalloc: the same, linked with -ljemalloc)') from ${src#$root/}; timer slack 1 ns on both sides; clock readings: Rust $rust_clock, LoadGen C++ clock_gettime (std::chrono::high_resolution_clock)"
echo "command: scripts/bench/loadgen_issue.sh --qps \"$ladder\" --bisect $bisect --duration-ms $duration_ms --latency-ms $latency_ms --repeats $repeats --offline-samples $offline_samples --impls \"$impls\" --busy-cores $busy_cores${quiet_cores:+ --quiet-cores $quiet_cores}"
echo "raw results: ${results#$root/} (busy runs set aside: ${busy_results#$root/})"
echo
python3 "$report" table "$results" "$busy_results"
if [ -s "$skipped" ]; then
  echo
  echo "Rungs left out because they do not fit this machine (a ladder that ends here is bounded by the machine, not measured):"
  echo
  cat "$skipped"
fi
