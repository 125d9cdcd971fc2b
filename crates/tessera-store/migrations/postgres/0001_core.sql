-- Core schema: teams, users, service accounts, API keys, the audit log.
-- Timestamps are milliseconds since the Unix epoch (UTC), as bigint, on both backends.
-- Keep this file in step with migrations/sqlite/0001_core.sql: same tables, columns, names.

create table server_settings (
    name text primary key,
    value text not null
);

create table teams (
    id text primary key,
    name text not null,
    plan text not null check (plan in ('free', 'pro', 'business', 'enterprise')),
    seat_limit bigint check (seat_limit is null or seat_limit >= 1),
    created_at bigint not null,
    updated_at bigint not null
);
create unique index teams_name_key on teams (lower(name));

create table users (
    id text primary key,
    team_id text not null references teams (id),
    number bigint not null,
    email text not null,
    name text,
    role text not null check (role in ('owner', 'admin', 'member')),
    created_at bigint not null,
    updated_at bigint not null
);
create unique index users_email_key on users (team_id, email);
create unique index users_number_key on users (number);

create table service_accounts (
    id text primary key,
    team_id text not null references teams (id),
    name text not null,
    description text,
    created_by text not null,
    created_at bigint not null,
    updated_at bigint not null,
    archived_at bigint
);
create unique index service_accounts_active_name_key
    on service_accounts (team_id, lower(name)) where archived_at is null;
create index service_accounts_team_created on service_accounts (team_id, created_at, id);

create table api_keys (
    id text primary key,
    team_id text not null references teams (id),
    service_account_id text references service_accounts (id),
    user_id text references users (id),
    name text not null,
    digest bytea not null,
    masked text not null,
    created_by text not null,
    created_at bigint not null,
    expires_at bigint,
    revoked_at bigint,
    revoked_reason text,
    replaced_by text,
    last_used_at bigint,
    constraint api_keys_one_owner check ((service_account_id is null) <> (user_id is null))
);
create unique index api_keys_digest_key on api_keys (digest);
create index api_keys_service_account on api_keys (service_account_id, created_at);
create index api_keys_user on api_keys (user_id, created_at);

create table audit_chains (
    stream text primary key,
    seq bigint not null,
    head_hash bytea not null
);

create table audit_events (
    id text primary key,
    stream text not null,
    seq bigint not null,
    team_id text,
    occurred_at bigint not null,
    actor_type text not null,
    actor_id text,
    actor_key_id text,
    action text not null,
    target_type text,
    target_id text,
    client_ip text,
    request_id text,
    details text not null,
    prev_hash bytea not null,
    hash bytea not null
);
create unique index audit_events_stream_seq_key on audit_events (stream, seq);
create index audit_events_team_target on audit_events (team_id, target_id);

-- The audit log is append-only; only an operator who drops these triggers can change it,
-- and `tessera audit verify` then finds what they changed.
create function audit_events_append_only() returns trigger language plpgsql as $$
begin
    raise exception 'audit events are append-only';
end;
$$;
create trigger audit_events_no_update before update or delete on audit_events
    for each row execute function audit_events_append_only();
