#!/usr/bin/env bash
# The README's walkthrough ("A first example", "A release through the pipeline",
# "Changing the rules", "Rotating and revoking keys" and "Waiving a finding"), command for command: the tested version of what README.md shows.
# The test suite runs it on a fresh directory (crates/custody-cli/tests/first_hour.rs), so
# the README cannot drift from the product.
#
#   examples/walkthrough.sh                        # custody from PATH
#   CUSTODY=target/release/custody examples/walkthrough.sh
#
# It works in a new temporary directory (printed first) holding a copy of examples/, with
# its own data directory there (./custody-data); nothing outside it is touched.
set -euo pipefail

examples=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ -n "${CUSTODY:-}" ]; then
    custody() { "$CUSTODY" "$@"; }
fi
# Nothing from the caller's environment decides who acts or where.
unset CUSTODY_TOKEN CUSTODY_SERVER CUSTODY_DATA_DIR CUSTODY_NOW CUSTODY_CA_CERT
cd "$(mktemp -d)"
cp -R "$examples"/. .
echo "walkthrough in $PWD"
step() { printf '\n== %s\n' "$*"; }

step "A first example"
# Keys: the builder and the release signer are different keys (separation of duties).
custody key generate --algorithm ed25519 --out builder
custody key generate --algorithm ecdsa-p256 --out release-signer
# The artifact's identity is its digest (streaming; progress bar for large files).
custody digest shop-1.4.2.tar
# An in-toto statement about it, signed into a DSSE envelope.
custody statement create --subject "shop-1.4.2.tar=$(custody digest shop-1.4.2.tar | cut -d' ' -f1)" \
    --predicate-type https://slsa.dev/provenance/v1 --predicate provenance.json > statement.json
custody dsse sign --key builder.key --payload-type application/vnd.in-toto+json statement.json > statement.dsse.json
# Verify: exit 0 only if enough distinct trusted keys signed (1 = denied, 2 = bad input).
custody dsse verify --key builder.pub statement.dsse.json
custody dsse verify --key builder.pub --key release-signer.pub --threshold 2 statement.dsse.json || test $? = 1
# Python verifiers (securesystemslib) match keys by their own key id: sign with that hint.
custody dsse sign --keyid securesystemslib --key builder.key --payload-type text/plain notes.txt > notes.dsse.json
# Many envelopes at once (JSON Lines, one per line): verified in parallel, each strictly.
cat statement.dsse.json notes.dsse.json > envelopes.jsonl
custody dsse verify --jsonl --key builder.pub envelopes.jsonl
# C2SP signed notes, the format of ledger checkpoints; witnesses' cosignatures are ignored.
custody key generate --out log
custody note sign --key log.key --name custody.example/log checkpoint.txt > checkpoint.note
custody note verify --verifier "$(custody key show --note-name custody.example/log log.pub)" checkpoint.note

step "A release through the pipeline"
# The data directory, its ledger and keys, the starter policy in force; you are its admin.
custody init
custody whoami
# Each approver's and policy owner's own key; then the walkthrough's policy, naming you.
for person in alice bob olga sam sasha sol; do custody key generate --out "$person"; done
mkdir -p policy/keys
cp builder.pub release-signer.pub alice.pub bob.pub olga.pub sam.pub sasha.pub sol.pub policy/keys/
sed -i "s/OPERATOR/$(custody whoami | sed -n 1p)/" policy/custody.toml
# Every mistake by line; what it loosens and tightens; the first real policy goes in force
# as a recorded bootstrap (the starter policy names no owners to approve it).
custody policy check policy
custody policy diff policy
custody policy propose policy
# Tokens for the services and people who act (each printed once; only its hash is kept).
CI=$(custody token create --principal ci-bot --expires 30d)
RITA=$(custody token create --principal rita --expires 30d)
ARGO=$(custody token create --principal argo --expires 90d)
OLGA=$(custody token create --principal olga --expires 7d)
# CI registers the artifact with SLSA v1 provenance signed by the builder key, and attaches
# evidence; rita signs the release; each promotion prints every gate with its reason.
SHOP=$(CUSTODY_TOKEN=$CI custody artifact register --name shop --file shop-1.4.2.tar \
    --source-repo https://git.example.com/acme/shop --commit 4f2c9e1 \
    --builder-id https://ci.example.com/builder/v1 --param profile=release --builder-key builder.key)
CUSTODY_TOKEN=$CI custody attest --artifact "$SHOP" --type junit report.xml
CUSTODY_TOKEN=$CI custody attest --artifact "$SHOP" --type cyclonedx sbom.cdx.json
CUSTODY_TOKEN=$RITA custody release create shop 1.4.2 --artifact "shop=$SHOP" --sign-key release-signer.key
CUSTODY_TOKEN=$RITA custody promote shop@1.4.2 --to build
CUSTODY_TOKEN=$RITA custody promote shop@1.4.2 --to test
# Staging wants a vulnerability scan too, and an approval: exit 1, it waits.
CUSTODY_TOKEN=$RITA custody promote shop@1.4.2 --to staging --idempotency-key ci-run-42 | tee staging.txt || test $? = 1
PRM=$(sed -n '1s/ .*//p' staging.txt)
custody approve "$PRM" --rationale "tests green" --risk low --sign-key alice.key
# With the scan attached, a new promotion: alice's approval stays with the first (said).
CUSTODY_TOKEN=$CI custody attest --artifact "$SHOP" --type osv osv-scan.json
CUSTODY_TOKEN=$RITA custody promote shop@1.4.2 --to staging | tee staging.txt || test $? = 1
PRM=$(sed -n '1s/ .*//p' staging.txt)
custody approve "$PRM" --rationale "tests green, scan clean" --risk low --sign-key alice.key
# Argo reports the deploy; the deploy gate answers (exit 0 only if allowed).
CUSTODY_TOKEN=$ARGO custody deploy report --env staging --digest "$SHOP" --status succeeded
custody verify --env staging "$SHOP"
# Production: two approvals, and a verified deploy in staging.
CUSTODY_TOKEN=$RITA custody promote shop@1.4.2 --to production | tee production.txt || test $? = 1
PRM=$(sed -n '1s/ .*//p' production.txt)
custody approve "$PRM" --rationale "canary clean" --risk low --sign-key alice.key
custody approve "$PRM" --rationale "change reviewed" --risk low --sign-key bob.key
CUSTODY_TOKEN=$ARGO custody deploy report --env production --digest "$SHOP" --status succeeded
custody verify --env production "$SHOP"
# A hotfix in an incident: olga breaks glass, signed with her own key (past the
# previous-environment, evidence, freeze and approvals gates, never signatures, naming or
# provenance); bob reviews it after the fact.
HOTFIX=$(CUSTODY_TOKEN=$CI custody artifact register --name shop --file shop-1.4.3.tar \
    --source-repo https://git.example.com/acme/shop --commit 9b1d3e7 \
    --builder-id https://ci.example.com/builder/v1 --param profile=release --builder-key builder.key)
CUSTODY_TOKEN=$RITA custody release create shop 1.4.3 --artifact "shop=$HOTFIX" --sign-key release-signer.key
CUSTODY_TOKEN=$OLGA custody promote shop@1.4.3 --to production --break-glass "checkout is down" --sign-key olga.key | tee glass.txt
GLASS=$(sed -n '1s/ .*//p' glass.txt)
custody approve "$GLASS" --rationale "hotfix diff checked" --risk medium --sign-key bob.key
# Its rollout fails: production rolls back to 1.4.2 by itself.
CUSTODY_TOKEN=$ARGO custody deploy report --env production --digest "$HOTFIX" --status failed
custody verify --env production "$SHOP"
# The story from the ledger; a decision replayed from its recorded facts and policy.
custody history --env production
custody history --artifact "$SHOP"
custody history --principal bob --since 2026-11-01T00:00:00Z
custody decision replay "$(sed -n 's/^  decision \([^ ]*\) .*/\1/p' production.txt)"
# A revoked token is refused at once (exit 1).
custody token revoke "$(custody token list | awk '$2 == "argo" { print $1 }')"
CUSTODY_TOKEN=$ARGO custody whoami || test $? = 1

step "Changing the rules"
# A contractor becomes an approver until a date: two of security approve, not the proposer.
sed -i 's/^approver = .*/approver = ["alice", "bob", { principal = "contractor", until = "2030-03-31T00:00:00Z" }]/' policy/custody.toml
custody policy diff policy
custody policy propose policy | tee proposal.txt
PROP=$(grep -o 'prop-[0-9a-z-]*' proposal.txt | sed -n 1p)
custody policy proposals
custody policy proposal "$PROP"
custody policy approve "$PROP" --rationale "contract signed" --sign-key sasha.key
custody policy approve "$PROP" --rationale "risk accepted" --sign-key sol.key
custody policy show
# Lowering production's approvals to one: rejected, nothing changes.
sed -i 's/quorum = 2, roles = \["approver"\]/quorum = 1, roles = ["approver"]/' policy/custody.toml
custody policy propose policy | tee proposal.txt
PROP=$(grep -o 'prop-[0-9a-z-]*' proposal.txt | sed -n 1p)
custody policy reject "$PROP" --rationale "not during the freeze" --sign-key sam.key
# Recompute the ledger's tree; check every hash and checkpoint.
custody log check

step "Rotating and revoking keys"
# The release signer hands over to a new key, both signing the hand-over: production keeps
# running on what the old key signed, and from now on only the successor signs.
custody key generate --algorithm ecdsa-p256 --out release-signer-2
custody key rotate release-signer --from release-signer.key --to release-signer-2.key
custody verify --env production "$SHOP"
CUSTODY_TOKEN=$RITA custody release create shop 1.4.4 --artifact "shop=$SHOP" --sign-key release-signer.key
CUSTODY_TOKEN=$RITA custody promote shop@1.4.4 --to build || test $? = 1
CUSTODY_TOKEN=$RITA custody release create shop 1.4.5 --artifact "shop=$SHOP" --sign-key release-signer-2.key
CUSTODY_TOKEN=$RITA custody promote shop@1.4.5 --to build
custody key list
# The new key leaks: revoke it from when it was compromised. What it signed since then is
# denied at once, an alert names it, and key impact shows the blast radius.
NEW=$(custody key show release-signer-2.pub | awk '/^key id/ { print $3 }')
custody key revoke "$NEW" --reason "key file leaked" --compromised-since "$(date -u +%Y-%m-%dT%H:%M:%SZ -d '-1 hour')"
custody verify --env build "$SHOP" || test $? = 1
custody key impact "$NEW"
custody verify --env production "$SHOP"

step "Waiving a finding"
# A nightly scan finds a critical CVE with a fix in what runs in production: the deploy gate
# closes at once, naming it.
CUSTODY_TOKEN=$CI custody attest --artifact "$SHOP" --type trivy nightly-scan.trivy.json
custody verify --env production "$SHOP" || test $? = 1
# Rita asks for a time-bound exception with a remediation plan; sam, of security (never the
# requester), approves it with his key. It counts until it expires, then the CVE blocks again.
X=$(CUSTODY_TOKEN=$RITA custody exception request --vulnerability CVE-2024-3094 --release shop@1.4.2 \
    --env production --plan upgrade --owner rita --due 7d --expires 14d \
    --reason "the backdoored sshd path is not in this image; upgrade scheduled")
custody exception approve "$X" --rationale "verified: no sshd in the image" --sign-key sam.key
custody verify --env production "$SHOP"
custody exception list
