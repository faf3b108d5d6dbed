#!/usr/bin/env bash
# Compile-time benchmark of errand's macros (see README.md next to this file).
#
#   benches/compile/run.sh [--runs N] [--dir DIR] [--jobs N] [--workflows N]
#
# Generates, under DIR (default /tmp/errand-compile-bench), a crate with
# 100 `#[errand::job]` fns and 10 `#[errand::workflow]`s of 10 `#[dag_step]`s
# (macro_crate), and the same crate with the macros already expanded
# (expanded_crate: errand's macros expanded, derives kept; expanded_all_crate:
# every proc macro expanded, serde's derive too), then times a clean
# `cargo check` of each crate (its dependencies already built) and an
# incremental one after editing one job's body. Nothing is written to the
# repository.
set -euo pipefail

RUNS=3
WORK=/tmp/errand-compile-bench
JOBS=100
WORKFLOWS=10
STEPS=10 # fixed by gen.py's DAG

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
}

while (($#)); do
    case "$1" in
        --runs) RUNS="${2:?--runs needs a number}"; shift 2 ;;
        --runs=*) RUNS="${1#*=}"; shift ;;
        --dir) WORK="${2:?--dir needs a path}"; shift 2 ;;
        --dir=*) WORK="${1#*=}"; shift ;;
        --jobs) JOBS="${2:?--jobs needs a number}"; shift 2 ;;
        --jobs=*) JOBS="${1#*=}"; shift ;;
        --workflows) WORKFLOWS="${2:?--workflows needs a number}"; shift 2 ;;
        --workflows=*) WORKFLOWS="${1#*=}"; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "run.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done
for n in "$RUNS" "$JOBS" "$WORKFLOWS"; do
    [[ "$n" =~ ^[0-9]+$ ]] || { echo "run.sh: '$n' is not a number" >&2; exit 2; }
done
((RUNS >= 1)) || { echo "run.sh: --runs must be at least 1" >&2; exit 2; }
((JOBS > 42)) || { echo "run.sh: --jobs must be more than 42 (job 42 is the one edited)" >&2; exit 2; }

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ERRAND_DIR="$(cd "$HERE/../.." && pwd)"
GEN="$HERE/gen.py"
grep -q '^name = "errand"$' "$ERRAND_DIR/Cargo.toml" 2>/dev/null \
    || { echo "run.sh: $ERRAND_DIR is not errand's repository root" >&2; exit 2; }
case "$WORK/" in
    "$ERRAND_DIR"/*) echo "run.sh: --dir must be outside the repository" >&2; exit 2 ;;
esac
command -v python3 >/dev/null || { echo "run.sh: python3 is needed (gen.py)" >&2; exit 2; }
command -v cargo >/dev/null || { echo "run.sh: cargo is needed" >&2; exit 2; }

# The measured builds share one target dir (dependencies are built once);
# the expansion, which needs RUSTC_BOOTSTRAP=1 and so would invalidate some
# dependencies' fingerprints, has its own. Both survive between invocations,
# so only the first one builds the dependencies.
TARGET="$WORK/target"
TARGET_EXPAND="$WORK/target-expand"
LOGS="$WORK/logs"
CRATES=(macro_crate expanded_crate expanded_all_crate)
# No compiler wrapper (a cache would hide the work) and incremental on, as
# in a default dev profile.
unset RUSTC_WRAPPER RUSTC_WORKSPACE_WRAPPER RUSTFLAGS CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_RUSTFLAGS
export CARGO_INCREMENTAL=1
export CARGO_TERM_COLOR=never

fail() { # what, log
    echo >&2
    echo "run.sh: FAILED: $1" >&2
    if [[ -n "${2:-}" && -f "$2" ]]; then
        echo "---- last lines of $2 ----" >&2
        tail -n 40 "$2" >&2
        echo "---- full log: $2 ----" >&2
    fi
    exit 1
}

# cargo in crate $1 with the measured target dir; output to log $2.
cargo_in() { # crate log args...
    local crate="$1" log="$2"
    shift 2
    (cd "$WORK/$crate" && CARGO_TARGET_DIR="$TARGET" cargo "$@") >"$log" 2>&1
}

now() { date +%s.%N; }

mkdir -p "$WORK" "$LOGS"
echo "errand compile-time benchmark"
echo "  errand:     $ERRAND_DIR"
echo "  work dir:   $WORK (generated crates, target dirs, logs)"
echo "  toolchain:  $(rustc --version)"
echo "  machine:    $(nproc) CPUs, load average at start: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
echo

# 1. Generate the macro crate (and the shared types crate).
echo "[1/4] generating macro_crate: $JOBS #[errand::job] fns, $WORKFLOWS #[errand::workflow]s of $STEPS #[dag_step]s"
rm -rf "$WORK/bench_types" "${CRATES[@]/#/$WORK/}" "$WORK/expanded.rs"
python3 "$GEN" crates "$WORK" "$ERRAND_DIR" --jobs "$JOBS" --workflows "$WORKFLOWS" \
    || fail "generating the macro crate (gen.py crates)"
# The workspace's lock file: the same dependency versions as the repository,
# and no registry resolution.
cp "$ERRAND_DIR/Cargo.lock" "$WORK/macro_crate/Cargo.lock"

# 2. Expand it. -Zunpretty=expanded prints the crate after macro expansion;
# RUSTC_BOOTSTRAP=1 lets the -Z flag through on a stable toolchain.
echo "[2/4] expanding it (cargo rustc -- -Zunpretty=expanded; builds dependencies into $TARGET_EXPAND the first time)"
(cd "$WORK/macro_crate" && RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$TARGET_EXPAND" \
    cargo rustc --profile=check --lib -- -Zunpretty=expanded >"$WORK/expanded.rs" 2>"$LOGS/expand.log") \
    || fail "expanding macro_crate (is the generated code valid? see the log)" "$LOGS/expand.log"
[[ -s "$WORK/expanded.rs" ]] || fail "the expansion is empty" "$LOGS/expand.log"
echo "      $(wc -l <"$WORK/macro_crate/src/lib.rs") lines of source -> $(wc -l <"$WORK/expanded.rs") lines expanded ($WORK/expanded.rs)"
for mode in errand all; do
    crate=expanded_crate
    [[ $mode == all ]] && crate=expanded_all_crate
    python3 "$GEN" expanded "$WORK/expanded.rs" "$WORK/$crate" "$mode" \
        || fail "turning the expansion into $crate (gen.py expanded ... $mode)"
    cp "$ERRAND_DIR/Cargo.lock" "$WORK/$crate/Cargo.lock"
done

# 3. Warm up: build every dependency, and check that each crate compiles.
echo "[3/4] warm-up: cargo check of each crate (builds the dependencies into $TARGET the first time)"
for crate in "${CRATES[@]}"; do
    hint=""
    [[ $crate == expanded* ]] && hint=" (the expansion may use something new that stable rustc refuses: see stabilize() in gen.py)"
    cargo_in "$crate" "$LOGS/warm-$crate.log" check --lib || fail "cargo check of $crate$hint" "$LOGS/warm-$crate.log"
    if grep -q '^warning' "$LOGS/warm-$crate.log"; then
        echo "      note: $crate has warnings (see $LOGS/warm-$crate.log)"
    fi
done

# 4. Measure. Per run and crate: `cargo clean -p <crate>` then `cargo check`
# (only the crate itself is compiled), then an edit of job 42's body (a
# string literal, the same in all three crates) and `cargo check` again
# (incremental), then a `cargo check` with nothing to do (cargo's own
# overhead). Crates are interleaved so that load changes hit them alike.
echo "[4/4] measuring: $RUNS run(s) x ${#CRATES[@]} crates x (clean, incremental, no-op)"
RESULTS="$WORK/results.tsv"
printf 'run\tcrate\tkind\tseconds\n' >"$RESULTS"
edit=0
for ((run = 1; run <= RUNS; run++)); do
    for crate in "${CRATES[@]}"; do
        log="$LOGS/run$run-$crate.log"
        cargo_in "$crate" "$log" clean -p "$crate" || fail "cargo clean -p $crate" "$log"
        t0=$(now)
        cargo_in "$crate" "$log" check --lib || fail "clean cargo check of $crate (run $run)" "$log"
        t1=$(now)
        clean=$(python3 -c "print(f'{$t1 - $t0:.3f}')")

        edit=$((edit + 1))
        src="$WORK/$crate/src/lib.rs"
        grep -q '__EDIT_ME__:[0-9]*' "$src" || fail "no edit point (__EDIT_ME__) in $src"
        sed -i "s/__EDIT_ME__:[0-9]*/__EDIT_ME__:$edit/" "$src"
        t0=$(now)
        cargo_in "$crate" "$log.incr" check --lib || fail "incremental cargo check of $crate (run $run)" "$log.incr"
        t1=$(now)
        incr=$(python3 -c "print(f'{$t1 - $t0:.3f}')")
        grep -q "Checking $crate" "$log.incr" || fail "the incremental cargo check of $crate did not recompile it" "$log.incr"

        # Nothing to do: cargo's own overhead, included in both numbers above.
        t0=$(now)
        cargo_in "$crate" "$log.noop" check --lib || fail "no-op cargo check of $crate (run $run)" "$log.noop"
        t1=$(now)
        noop=$(python3 -c "print(f'{$t1 - $t0:.3f}')")

        printf '%s\t%s\t%s\t%s\n' "$run" "$crate" clean "$clean" "$run" "$crate" incremental "$incr" \
            "$run" "$crate" noop "$noop" >>"$RESULTS"
        printf '      run %d  %-19s clean %6.2f s   incremental %6.2f s   no-op %5.2f s\n' \
            "$run" "$crate" "$clean" "$incr" "$noop"
    done
done
echo "      raw timings: $RESULTS"
echo

# Report.
python3 - "$RESULTS" "$JOBS" "$WORKFLOWS" "$STEPS" <<'EOF'
import csv, statistics, sys

path, jobs, workflows, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rows = list(csv.DictReader(open(path), delimiter="\t"))
t = {}
for r in rows:
    t.setdefault((r["crate"], r["kind"]), []).append(float(r["seconds"]))

def stats(v):
    return min(v), statistics.median(v), max(v)

crates = ["macro_crate", "expanded_crate", "expanded_all_crate"]
runs = len(t[("macro_crate", "clean")])
print(f"Results ({runs} run(s) each; seconds of wall time for `cargo check`, dependencies already built)")
print()
print(f"{'crate':<20} | {'clean check':^22} | {'incremental (1 job edited)':^22} | {'no-op':^6}")
print(f"{'':<20} | {'min':>6} {'median':>7} {'max':>6}  | {'min':>6} {'median':>7} {'max':>6}  | {'median':>6}")
print("-" * 20 + "-+-" + "-" * 23 + "+-" + "-" * 23 + "+-" + "-" * 6)
for c in crates:
    cl, inc = stats(t[(c, "clean")]), stats(t[(c, "incremental")])
    noop = statistics.median(t[(c, "noop")])
    print(f"{c:<20} | {cl[0]:6.2f} {cl[1]:7.2f} {cl[2]:6.2f}  | {inc[0]:6.2f} {inc[1]:7.2f} {inc[2]:6.2f}  | {noop:6.2f}")
print()
print("(no-op: `cargo check` with nothing to rebuild, cargo's own overhead, part of every number)")
print()

tasks = jobs + workflows * steps
print(f"Macro cost = macro_crate minus an expanded crate (median; min in parentheses).")
print(f"Per job = clean cost / {tasks} generated tasks ({jobs} #[job] fns + {workflows} workflows x {steps} #[dag_step]s).")
print()
targets = {"clean": 1.5, "incremental": 0.3}
for c, what in [("expanded_crate", "errand's macros (derives not expanded)"),
                ("expanded_all_crate", "all proc macros (errand's + the serde derive they emit)")]:
    print(f"vs {c}: {what}")
    for kind in ("clean", "incremental"):
        m, e = t[("macro_crate", kind)], t[(c, kind)]
        d_med = statistics.median(m) - statistics.median(e)
        d_min = min(m) - min(e)
        ok = d_med <= targets[kind]
        line = f"  {kind:<12} {d_med:+6.2f} s  ({d_min:+6.2f} s)   target <= {targets[kind]} s: {'met' if ok else 'NOT met'}"
        if kind == "clean":
            line += f"   per job: {d_med / tasks * 1000:+.1f} ms ({d_min / tasks * 1000:+.1f} ms)"
        print(line)
    print()
EOF
echo "Timings on a loaded machine are noisy: compare medians of several runs (--runs N) on a quiet one."
