-- Extra permissions of a key beyond its principal's rights; today only 'worker' (may run
-- `tessera worker` for its team). Space-separated; empty for ordinary keys.
alter table api_keys add column permissions text not null default '';
