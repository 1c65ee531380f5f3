-- Which credential each request used (`token tok_…`, `oidc ISSUER SUBJECT`, …): a principal
-- may hold several tokens, and a review of one leaked token needs its requests alone.
-- Entries from before this column say '' (not recorded).
ALTER TABLE access_log ADD COLUMN credential TEXT NOT NULL DEFAULT '';
