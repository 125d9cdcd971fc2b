-- Repository integrations: what repositories a team (or one user) has authorized.
-- Keep in step with the other backend's 0002_integrations.sql.

create table integrations (
    id text primary key,
    team_id text not null references teams (id),
    scope text not null check (scope in ('team', 'personal')),
    owner_user_id text references users (id),
    provider text not null,
    name text not null,
    created_by text not null,
    created_at bigint not null,
    updated_at bigint not null,
    constraint integrations_personal_owner check ((scope = 'personal') = (owner_user_id is not null))
);
create index integrations_team on integrations (team_id, created_at, id);

create table integration_repositories (
    integration_id text not null references integrations (id) on delete cascade,
    url text not null,
    clone_url text,
    position bigint not null,
    constraint integration_repositories_pkey primary key (integration_id, url)
);
create index integration_repositories_url on integration_repositories (url);
