-- SHA-256 of a v1 create request that named its own agent id, so a replay can be recognised.
alter table agents add column create_digest text;
