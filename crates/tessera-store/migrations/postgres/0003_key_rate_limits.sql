-- A per-key rate limit, in requests per minute; null means the server's default.
alter table api_keys add column rate_limit_per_minute bigint;
