#!/usr/bin/env bash
# Mutation testing of the crates that decide trust: cargo-mutants changes one thing at a
# time in their code (a condition flipped, a function's body replaced by a default) and
# runs the crate's own tests; a change no test notices is a promise no test pins.
#
#   scripts/mutants.sh                       # custody-ledger, custody-crypto, custody-policy
#   scripts/mutants.sh custody-ledger        # one crate
#   scripts/mutants.sh custody-app           # the app's promotion, identity and environment
#                                            # modules (each mutant rebuilds the app and runs
#                                            # its tests: 444 mutants, 47 min with JOBS=2)
#   JOBS=2 scripts/mutants.sh                # build and test two mutants at once
#   SUMMARY_ONLY=1 scripts/mutants.sh CRATE  # the summary of the last run again (after
#                                            # explaining a mutant, say), running nothing
#
# Not part of scripts/test.sh: on two cores with JOBS=2 each crate takes half an hour to
# an hour (custody-ledger 26 min, custody-app 47 min, custody-policy about an hour). It
# installs cargo-mutants if the machine lacks it, writes each crate's results under
# target/mutants/CRATE/mutants.out (outcomes.json, missed.txt, a log per mutant), then
# prints caught / missed / timeout / unviable per crate.
#
# A missed mutant is either killed by a new test or explained in scripts/mutants-explained.txt
# (one line each: the mutant's description without its line and column, then `#` and why no
# test can tell it apart). The script exits 1 if a missed mutant is neither.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-mutants >/dev/null; then
    printf '==> installing cargo-mutants\n' >&2
    cargo install --locked cargo-mutants
fi

if [ $# -eq 0 ]; then
    set -- custody-ledger custody-crypto custody-policy
fi
for crate in "$@"; do
    [ -z "${SUMMARY_ONLY:-}" ] || continue
    printf '\n==> cargo mutants -p %s\n' "$crate"
    mkdir -p "target/mutants/$crate"
    # cargo-mutants exits 2 when it finds missed mutants: the summary below judges them.
    files=()
    if [ "$crate" = custody-app ]; then
        # The trust-deciding parts of the app; the rest (history, dashboards' reads) is not.
        for module in promotion identity environment; do
            files+=(-f "crates/custody-app/src/$module/*.rs")
        done
    fi
    cargo mutants -p "$crate" "${files[@]}" --jobs "${JOBS:-1}" --timeout 300 \
        --output "target/mutants/$crate" || { rc=$?; [ $rc -eq 2 ] || [ $rc -eq 3 ]; }
done

python3 - "$@" <<'PY'
import json, re, sys

explained = {}
with open("scripts/mutants-explained.txt") as f:
    for line in f:
        line = line.strip()
        if line and not line.startswith("#"):
            mutant, _, why = line.partition(" # ")
            explained[mutant.strip()] = why.strip()

def without_position(name):
    # "path.rs:12:5: replace x" -> "path.rs: replace x" (lines move as code changes).
    return re.sub(r"^([^:]+):\d+:\d+:", r"\1:", name)

unexplained = []
print(f"\n{'crate':<16} {'caught':>7} {'missed':>7} {'explained':>9} {'timeout':>7} {'unviable':>8}  caught of viable")
for crate in sys.argv[1:]:
    with open(f"target/mutants/{crate}/mutants.out/outcomes.json") as f:
        outcomes = json.load(f)["outcomes"]
    counts = {"CaughtMutant": 0, "MissedMutant": 0, "Timeout": 0, "Unviable": 0}
    known = 0
    for o in outcomes:
        mutant = o["scenario"]
        if not isinstance(mutant, dict):
            continue  # the baseline run
        counts[o["summary"]] = counts.get(o["summary"], 0) + 1
        if o["summary"] == "MissedMutant":
            name = without_position(mutant["Mutant"]["name"])
            if name in explained:
                known += 1
            else:
                unexplained.append(mutant["Mutant"]["name"])
    viable = counts["CaughtMutant"] + counts["MissedMutant"] + counts["Timeout"]
    share = (counts["CaughtMutant"] + counts["Timeout"]) / viable if viable else 1.0
    print(f"{crate:<16} {counts['CaughtMutant']:>7} {counts['MissedMutant']:>7} {known:>9} "
          f"{counts['Timeout']:>7} {counts['Unviable']:>8}  {share:.1%}")
if unexplained:
    print("\nmissed and not explained in scripts/mutants-explained.txt (kill each with a test, or explain it):")
    for name in unexplained:
        print(f"  {name}")
    sys.exit(1)
PY
