-- Cloud agents, their runs (the durable run queue) and run messages (conversation and events).
-- Keep in step with the other backend's 0004_agents.sql.

create table agents (
    id text primary key,
    team_id text not null references teams (id),
    name text not null,
    principal_type text not null check (principal_type in ('user', 'service_account')),
    principal_id text not null,
    api_key_id text not null,
    integration_id text not null,
    repository_url text not null,
    clone_url text not null,
    starting_ref text,
    branch_name text not null,
    model text not null,
    auto_create_pr bigint not null,
    webhook_url text,
    webhook_secret text,
    archived_at bigint,
    deleted_at bigint,
    created_at bigint not null,
    updated_at bigint not null
);
create index agents_team_created on agents (team_id, created_at, id);
create index agents_team_principal on agents (team_id, principal_id, created_at);

create table runs (
    id text primary key,
    agent_id text not null references agents (id),
    team_id text not null references teams (id),
    prompt text not null,
    status text not null check (status in ('CREATING', 'RUNNING', 'FINISHED', 'ERROR', 'CANCELLED', 'EXPIRED')),
    principal_type text not null,
    principal_id text not null,
    api_key_id text not null,
    attempts bigint not null,
    lease_owner text,
    lease_expires_at bigint,
    cancel_requested_at bigint,
    started_at bigint,
    finished_at bigint,
    summary text,
    error_message text,
    input_tokens bigint not null,
    output_tokens bigint not null,
    duration_ms bigint,
    created_at bigint not null,
    updated_at bigint not null
);
create index runs_agent on runs (agent_id, created_at);
create index runs_queue on runs (status, created_at);

create table run_messages (
    run_id text not null references runs (id),
    seq bigint not null,
    kind text not null,
    body text not null,
    created_at bigint not null,
    constraint run_messages_pkey primary key (run_id, seq)
);
