//! The `tessera` binary, run as a user would: the README walkthrough, `--json`, exit codes,
//! configuration precedence, and revocation across two server processes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_tessera");

fn tessera(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut command = Command::new(BIN);
    command.args(args).stdin(Stdio::null());
    for var in [
        "TESSERA_API_KEY",
        "CURSOR_API_KEY",
        "TESSERA_URL",
        "TESSERA_DATA_DIR",
        "TESSERA_DATABASE_URL",
        "TESSERA_LISTEN",
        "TESSERA_CONFIG",
        "TESSERA_SECRET",
    ] {
        command.env_remove(var);
    }
    command.envs(envs.iter().copied());
    command.output().expect("run tessera")
}

fn json_of(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("stdout is JSON")
}

fn code(output: &Output) -> i32 {
    output.status.code().expect("exit code")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A `tessera serve` process, killed on drop.
struct Server {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Server {
    fn start(args: &[&str], envs: &[(&str, &str)], log_dir: &Path) -> Server {
        Server::start_in(None, args, envs, log_dir)
    }

    fn start_in(cwd: Option<&Path>, args: &[&str], envs: &[(&str, &str)], log_dir: &Path) -> Server {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let log = log_dir.join(format!("serve-{port}.log"));
        let mut command = Command::new(BIN);
        command.arg("serve").args(args).arg("--listen").arg(&listen);
        command.envs(envs.iter().copied()).env_remove("TESSERA_LISTEN");
        command.stdout(Stdio::null()).stderr(std::fs::File::create(&log).unwrap());
        if let Some(cwd) = cwd {
            command.current_dir(cwd);
        }
        let child = command.spawn().expect("spawn serve");
        let server = Server { child, url: format!("http://{listen}"), log };
        server.wait_ready();
        server
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(self.url.trim_start_matches("http://")).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("server did not start: {}", std::fs::read_to_string(&self.log).unwrap_or_default());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn terminate(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A blocking GET with the key as Basic user name, from synchronous test code.
fn get_status(url: &str, key: &str) -> u16 {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        reqwest::Client::new().get(url).basic_auth(key, Some("")).send().await.unwrap().status().as_u16()
    })
}

#[test]
fn every_command_has_help() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["worker", "--help"],
        vec!["init", "--help"],
        vec!["users", "add", "--help"],
        vec!["teams", "set-plan", "--help"],
        vec!["service-accounts", "--help"],
        vec!["service-accounts", "create", "--help"],
        vec!["service-accounts", "list", "--help"],
        vec!["service-accounts", "rotate", "--help"],
        vec!["service-accounts", "keys", "add", "--help"],
        vec!["service-accounts", "keys", "revoke", "--help"],
        vec!["service-accounts", "archive", "--help"],
        vec!["whoami", "--help"],
        vec!["audit", "list", "--help"],
        vec!["audit", "verify", "--help"],
        vec!["integrations", "add-git", "--help"],
        vec!["integrations", "list", "--help"],
        vec!["integrations", "remove", "--help"],
    ] {
        let output = tessera(&args, &[]);
        assert_eq!(code(&output), 0, "{args:?}");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(text.contains("Usage:"), "{args:?}: {text}");
        assert!(text.contains("--json"), "{args:?} lacks --json");
    }
    assert_eq!(code(&tessera(&["service-accounts", "frobnicate"], &[])), 2, "usage errors exit 2");
}

/// The README's five-minute walkthrough, on SQLite, plus exit codes for the failures a script
/// must tell apart.
#[test]
fn walkthrough_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let data = data_dir.to_str().unwrap();
    let init = json_of(&tessera(
        &["init", "--team", "Acme", "--admin-email", "ops@acme.test", "--json", "--data-dir", data],
        &[],
    ));
    let owner_key = init["apiKey"]["key"].as_str().unwrap().to_owned();
    assert_eq!(init["team"]["plan"], "enterprise");
    assert!(data_dir.join("tessera.db").exists() && data_dir.join("server.secret").exists());

    let server = Server::start(&["--data-dir", data], &[], dir.path());
    let url = server.url.clone();
    let as_owner = [("TESSERA_URL", url.as_str()), ("TESSERA_API_KEY", owner_key.as_str())];

    let created = json_of(&tessera(
        &["service-accounts", "create", "Linear Integration", "--description", "Tickets to runs", "--json"],
        &as_owner,
    ));
    let sa_id = created["serviceAccount"]["id"].as_str().unwrap().to_owned();
    let sa_key = created["apiKey"]["key"].as_str().unwrap().to_owned();
    let human = tessera(&["service-accounts", "create", "Sentry Auto-Fix"], &as_owner);
    assert_eq!(code(&human), 0);
    assert!(String::from_utf8_lossy(&human.stderr).contains("shown only once"), "warning on stderr");
    assert!(String::from_utf8_lossy(&human.stdout).contains("tessera_sa_"), "key on stdout");

    assert_eq!(get_status(&format!("{url}/v0/me"), &sa_key), 200);
    let listed = json_of(&tessera(&["service-accounts", "list", "--json"], &as_owner));
    assert_eq!(listed["serviceAccounts"].as_array().unwrap().len(), 2);
    assert!(!serde_json::to_string(&listed).unwrap().contains(&sa_key));
    let list_text =
        String::from_utf8_lossy(&tessera(&["service-accounts", "list"], &as_owner).stdout).into_owned();
    assert!(list_text.contains("Linear Integration") && list_text.contains("tessera_sa_…"));

    let rotated = json_of(&tessera(&["service-accounts", "rotate", &sa_id, "--json"], &as_owner));
    let new_key = rotated["apiKey"]["key"].as_str().unwrap().to_owned();
    assert_eq!(get_status(&format!("{url}/v0/me"), &sa_key), 401, "old key stops at once");
    assert_eq!(get_status(&format!("{url}/v0/me"), &new_key), 200);

    // CURSOR_API_KEY works when TESSERA_API_KEY is unset; a service account may ask who it is.
    let whoami = json_of(&tessera(
        &["whoami", "--json"],
        &[("TESSERA_URL", url.as_str()), ("CURSOR_API_KEY", new_key.as_str())],
    ));
    assert_eq!(whoami["me"]["serviceAccountId"], sa_id.as_str());

    // Exit codes.
    let as_sa = [("TESSERA_URL", url.as_str()), ("TESSERA_API_KEY", new_key.as_str())];
    assert_eq!(code(&tessera(&["service-accounts", "list"], &[("TESSERA_URL", url.as_str())])), 3, "no key");
    assert_eq!(
        code(&tessera(
            &["service-accounts", "list"],
            &[("TESSERA_URL", url.as_str()), ("TESSERA_API_KEY", "tessera_u_wrong")]
        )),
        3,
        "bad key"
    );
    assert_eq!(code(&tessera(&["service-accounts", "list"], &as_sa)), 4, "a service account cannot manage");
    assert_eq!(
        code(&tessera(&["service-accounts", "get", "sa_0000000000000000000000000000000a"], &as_owner)),
        5
    );
    assert_eq!(code(&tessera(&["service-accounts", "create", "linear integration"], &as_owner)), 6);
    assert_eq!(code(&tessera(&["service-accounts", "create", ""], &as_owner)), 7);
    assert_eq!(
        code(&tessera(
            &["service-accounts", "list"],
            &[("TESSERA_URL", "http://127.0.0.1:9"), ("TESSERA_API_KEY", owner_key.as_str())]
        )),
        8
    );
    let failed = tessera(&["service-accounts", "create", "linear integration", "--json"], &as_owner);
    let error: Value = serde_json::from_slice(&failed.stderr).expect("--json errors are JSON on stderr");
    assert_eq!(error["error"]["exitCode"], 6);
    assert!(failed.stdout.is_empty(), "nothing on stdout when failing");

    // Integrations: authorize repositories, see them as the service account, remove them.
    let added = json_of(&tessera(
        &[
            "integrations",
            "add-git",
            "--scope",
            "team",
            "--name",
            "Acme",
            "--repo",
            "https://github.com/acme/widgets=file:///srv/git/widgets.git",
            "--repo",
            "https://github.com/acme/gadgets",
            "--json",
        ],
        &as_owner,
    ));
    let integration_id = added["integration"]["id"].as_str().unwrap().to_owned();
    assert_eq!(added["integration"]["repositories"][0]["cloneUrl"], "file:///srv/git/widgets.git");
    let listed = json_of(&tessera(&["integrations", "list", "--json"], &as_sa));
    assert_eq!(listed["integrations"][0]["id"], integration_id.as_str());
    assert_eq!(
        code(&tessera(
            &["integrations", "add-git", "--scope", "team", "--name", "x", "--repo", "https://h/o/r"],
            &as_sa
        )),
        4
    );
    assert_eq!(
        code(&tessera(
            &["integrations", "add-git", "--scope", "team", "--name", "x", "--repo", "not-a-url"],
            &as_owner
        )),
        7
    );
    assert_eq!(code(&tessera(&["integrations", "remove", &integration_id], &as_owner)), 0);
    assert_eq!(
        json_of(&tessera(&["integrations", "list", "--json"], &as_owner))["integrations"],
        serde_json::json!([])
    );

    let archived = json_of(&tessera(&["service-accounts", "archive", &sa_id, "--json"], &as_owner));
    assert_eq!(archived["serviceAccount"]["status"], "archived");
    assert_eq!(get_status(&format!("{url}/v0/me"), &new_key), 401);
    let with_archived = json_of(&tessera(&["service-accounts", "list", "--archived", "--json"], &as_owner));
    assert_eq!(with_archived["serviceAccounts"].as_array().unwrap().len(), 2);

    let audit = json_of(&tessera(&["audit", "list", "--json", "--target", &sa_id], &as_owner));
    let actions: Vec<&str> =
        audit["events"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["service_account.archive", "service_account.create"]);
    let verified = json_of(&tessera(&["audit", "verify", "--json"], &as_owner));
    assert_eq!(verified["valid"], true);
    assert!(!server.log().contains(&owner_key[10..]), "no key in the server log");
}

#[test]
fn operator_commands_enforce_plans_and_seats() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let init = json_of(&tessera(
        &[
            "init",
            "--team",
            "Small",
            "--admin-email",
            "a@small.test",
            "--plan",
            "pro",
            "--seats",
            "2",
            "--json",
            "--data-dir",
            data,
        ],
        &[],
    ));
    let owner_key = init["apiKey"]["key"].as_str().unwrap().to_owned();
    let added = json_of(&tessera(
        &[
            "users",
            "add",
            "--team",
            "Small",
            "--email",
            "b@small.test",
            "--role",
            "member",
            "--api-key",
            "--json",
            "--data-dir",
            data,
        ],
        &[],
    ));
    assert!(added["apiKey"]["key"].as_str().unwrap().starts_with("tessera_u_"));
    let full = tessera(
        &[
            "users",
            "add",
            "--team",
            "Small",
            "--email",
            "c@small.test",
            "--role",
            "admin",
            "--data-dir",
            data,
        ],
        &[],
    );
    assert_eq!(code(&full), 6, "{}", String::from_utf8_lossy(&full.stderr));
    assert!(String::from_utf8_lossy(&full.stderr).contains("seats"));
    assert_eq!(
        code(&tessera(&["init", "--team", "small", "--admin-email", "x@y.test", "--data-dir", data], &[])),
        6,
        "team names are unique"
    );
    assert_eq!(
        code(&tessera(
            &[
                "users",
                "add",
                "--team",
                "Nope",
                "--email",
                "b@x.test",
                "--role",
                "member",
                "--data-dir",
                data
            ],
            &[]
        )),
        5
    );
    assert_eq!(
        code(&tessera(&["init", "--team", "X", "--admin-email", "not-an-email", "--data-dir", data], &[])),
        2
    );

    let server = Server::start(&["--data-dir", data], &[], dir.path());
    let as_owner = [("TESSERA_URL", server.url.as_str()), ("TESSERA_API_KEY", owner_key.as_str())];
    let refused = tessera(&["service-accounts", "create", "Bot"], &as_owner);
    assert_eq!(code(&refused), 4);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("Enterprise plan"));
    let upgraded = json_of(&tessera(
        &["teams", "set-plan", "--team", "Small", "--plan", "enterprise", "--json", "--data-dir", data],
        &[],
    ));
    assert_eq!(upgraded["team"]["previousPlan"], "pro");
    // Seats are all taken, and a service account can still be created.
    assert_eq!(code(&tessera(&["service-accounts", "create", "Bot"], &as_owner)), 0);
    let plan_events =
        json_of(&tessera(&["audit", "list", "--action", "team.plan_change", "--json"], &as_owner));
    assert_eq!(plan_events["events"][0]["details"]["to"], "enterprise");
}

#[test]
fn settings_come_from_flags_then_environment_then_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let (file_port, env_port, flag_port) = (free_port(), free_port(), free_port());
    let config = dir.path().join("tessera.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{file_port}\"\ndata_dir = \"{}\"\nlog_format = \"json\"\n",
            data.display()
        ),
    )
    .unwrap();
    let start = |with_env: bool, with_flag: bool| {
        let mut command = Command::new(BIN);
        command
            .args(["serve", "--config", config.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        command.env_remove("TESSERA_LISTEN").env_remove("TESSERA_DATA_DIR").env_remove("TESSERA_LOG_FORMAT");
        if with_env {
            command.env("TESSERA_LISTEN", format!("127.0.0.1:{env_port}"));
        }
        if with_flag {
            command.args(["--listen", &format!("127.0.0.1:{flag_port}")]);
        }
        command.spawn().unwrap()
    };
    for (with_env, with_flag, expected) in
        [(false, false, file_port), (true, false, env_port), (true, true, flag_port)]
    {
        let mut child = start(with_env, with_flag);
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut up = false;
        while Instant::now() < deadline && !up {
            up = std::net::TcpStream::connect(("127.0.0.1", expected)).is_ok();
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let output = child.wait_with_output().unwrap();
        assert!(up, "expected port {expected} (env {with_env}, flag {with_flag})");
        let log = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<Value> =
            log.lines().map(|l| serde_json::from_str(l).expect("log_format from the file applies")).collect();
        assert!(lines.iter().any(|l| l["message"].as_str().unwrap().contains("listening")), "{log}");
    }
    assert!(data.join("tessera.db").exists(), "data_dir from the file applies");
    std::fs::write(&config, "nonsense_setting = 1\n").unwrap();
    let bad = tessera(&["serve", "--config", config.to_str().unwrap()], &[]);
    assert_eq!(code(&bad), 1);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("nonsense_setting"));
}

fn revocation_across_processes(database_args: &[&str], envs: &[(&str, &str)]) {
    let dir = tempfile::tempdir().unwrap();
    let init = json_of(&tessera(
        &[&["init", "--team", "Acme", "--admin-email", "ops@acme.test", "--json"][..], database_args]
            .concat(),
        envs,
    ));
    let owner_key = init["apiKey"]["key"].as_str().unwrap().to_owned();
    let mut first = Server::start(database_args, envs, dir.path());
    let second = Server::start(database_args, envs, dir.path());
    let as_owner = [("TESSERA_URL", first.url.as_str()), ("TESSERA_API_KEY", owner_key.as_str())];
    let created = json_of(&tessera(&["service-accounts", "create", "Bot", "--json"], &as_owner));
    let sa_id = created["serviceAccount"]["id"].as_str().unwrap().to_owned();
    let key_id = created["apiKey"]["id"].as_str().unwrap().to_owned();
    let key = created["apiKey"]["key"].as_str().unwrap().to_owned();
    for _ in 0..5 {
        assert_eq!(get_status(&format!("{}/v0/me", second.url), &key), 200);
    }
    let revoked = tessera(&["service-accounts", "keys", "revoke", &sa_id, &key_id], &as_owner);
    assert_eq!(code(&revoked), 0, "{}", String::from_utf8_lossy(&revoked.stderr));
    assert_eq!(get_status(&format!("{}/v0/me", second.url), &key), 401, "the other process refuses at once");
    // Graceful shutdown flushes and exits cleanly.
    first.terminate();
    assert_eq!(first.child.try_wait().unwrap().and_then(|s| s.code()), Some(0), "{}", first.log());
}

#[test]
fn revocation_reaches_another_server_process_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    revocation_across_processes(&["--data-dir", &data], &[]);
}

#[test]
fn revocation_reaches_another_server_process_on_postgres() {
    let admin_url = std::env::var("TESSERA_TEST_DATABASE_URL")
        .unwrap_or_else(|_| crate::harness::DEFAULT_PG_URL.to_owned());
    let schema = format!("cli_{}", crate::harness::uuid_simple());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let reachable = runtime.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&admin_url).await.ok()?;
        sqlx::query(&format!("create schema {schema}")).execute(&mut conn).await.ok()
    });
    if reachable.is_none() {
        let in_ci = std::env::var("CI").is_ok_and(|v| v == "true");
        assert!(
            !in_ci && std::env::var("TESSERA_TEST_SKIP_POSTGRES").is_ok_and(|v| v == "1"),
            "PostgreSQL unreachable at {admin_url}"
        );
        eprintln!("SKIPPING PostgreSQL CLI test: TESSERA_TEST_SKIP_POSTGRES=1");
        return;
    }
    let separator = if admin_url.contains('?') { '&' } else { '?' };
    let url = format!("{admin_url}{separator}options=-c%20search_path%3D{schema}");
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret");
    revocation_across_processes(
        &["--database-url", &url, "--secret-file", secret_file.to_str().unwrap()],
        &[],
    );
    runtime.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&admin_url).await.unwrap();
        sqlx::query(&format!("drop schema {schema} cascade")).execute(&mut conn).await.unwrap();
    });
}

/// Polls an agent (v0) until `done(status)` or 30 s pass; returns the last status.
fn wait_agent(url: &str, key: &str, id: &str, done: impl Fn(&str) -> bool) -> Value {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body: Value = runtime.block_on(async {
            reqwest::Client::new()
                .get(format!("{url}/v0/agents/{id}"))
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap()
        });
        if done(body["status"].as_str().unwrap_or("")) || Instant::now() > deadline {
            return body;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn post_json(url: &str, key: &str, body: Value) -> Value {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let response = reqwest::Client::new().post(url).bearer_auth(key).json(&body).send().await.unwrap();
        assert!(response.status().is_success(), "{url}: {}", response.status());
        response.json().await.unwrap()
    })
}

fn crash_a_worker(database_args: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let fixture = crate::harness::GitFixture::new();
    let init = json_of(&tessera(
        &[&["init", "--team", "Acme", "--admin-email", "ops@acme.test", "--json"][..], database_args]
            .concat(),
        &[],
    ));
    let owner_key = init["apiKey"]["key"].as_str().unwrap().to_owned();
    let server = Server::start(&[database_args, &["--embedded-worker", "false"]].concat(), &[], dir.path());
    let url = server.url.clone();
    let as_owner = [("TESSERA_URL", url.as_str()), ("TESSERA_API_KEY", owner_key.as_str())];
    let created = json_of(&tessera(&["service-accounts", "create", "Runner", "--json"], &as_owner));
    let sa_id = created["serviceAccount"]["id"].as_str().unwrap().to_owned();
    let sa_key = created["apiKey"]["key"].as_str().unwrap().to_owned();
    let worker_key =
        json_of(&tessera(&["service-accounts", "keys", "add", &sa_id, "--worker", "--json"], &as_owner));
    assert_eq!(worker_key["apiKey"]["id"].as_str().map(|s| s.starts_with("key_")), Some(true));
    let worker_key_id = worker_key["apiKey"]["id"].as_str().unwrap().to_owned();
    let worker_key = worker_key["apiKey"]["key"].as_str().unwrap().to_owned();
    let repo = format!("https://github.com/acme/widgets={}", fixture.clone_url);
    assert_eq!(
        code(&tessera(
            &["integrations", "add-git", "--scope", "team", "--name", "Acme", "--repo", &repo],
            &as_owner
        )),
        0
    );

    // A key without the worker permission cannot run a worker.
    let refused =
        tessera(&[&["worker"][..], database_args].concat(), &[("TESSERA_API_KEY", sa_key.as_str())]);
    assert_eq!(code(&refused), 3, "{}", String::from_utf8_lossy(&refused.stderr));

    let spawn_worker = || {
        let mut command = Command::new(BIN);
        command.arg("worker").args(database_args).args([
            "--lease",
            "2s",
            "--work-dir",
            dir.path().join("work").to_str().unwrap(),
        ]);
        command.env("TESSERA_API_KEY", &worker_key).stdout(Stdio::null()).stderr(Stdio::null());
        command.spawn().unwrap()
    };
    let mut worker = spawn_worker();
    let launch = |prompt: &str| {
        let body = serde_json::json!({ "prompt": { "text": prompt }, "source": { "repository": "https://github.com/acme/widgets" } });
        post_json(&format!("{url}/v0/agents"), &sa_key, body)["id"].as_str().unwrap().to_owned()
    };
    let sleeper = launch("Working\n@sleep 60");
    assert_eq!(wait_agent(&url, &sa_key, &sleeper, |s| s != "CREATING")["status"], "RUNNING");
    // Kill the worker mid-run: its lease runs out, and the run ends in ERROR with a reason.
    worker.kill().unwrap();
    worker.wait().unwrap();
    let ended = wait_agent(&url, &sa_key, &sleeper, |s| s != "RUNNING");
    assert_eq!(ended["status"], "ERROR", "{ended}");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let runs: Value = runtime.block_on(async {
        reqwest::Client::new()
            .get(format!("{url}/v1/agents/{sleeper}/runs"))
            .bearer_auth(&sa_key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    assert!(runs["items"][0]["result"].as_str().unwrap().contains("stopped responding"), "{runs}");

    // A new worker picks up new work and pushes the branch.
    let mut worker = spawn_worker();
    let writer = launch("@write from-worker.txt\nhello\n@end\nDone");
    let finished = wait_agent(&url, &sa_key, &writer, |s| s != "CREATING" && s != "RUNNING");
    assert_eq!(finished["status"], "FINISHED", "{finished}");
    let branch = finished["target"]["branchName"].as_str().unwrap();
    assert_eq!(fixture.file_on(branch, "from-worker.txt").as_deref(), Some("hello\n"));
    // Revoking the worker's key stops the worker.
    assert_eq!(code(&tessera(&["service-accounts", "keys", "revoke", &sa_id, &worker_key_id], &as_owner)), 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut exit = None;
    while exit.is_none() && Instant::now() < deadline {
        exit = worker.try_wait().unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = worker.kill();
    let _ = worker.wait();
    assert_eq!(exit.and_then(|s| s.code()), Some(3), "the worker exits when its key is revoked");
}

#[test]
fn a_killed_worker_process_leaves_no_run_running_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    crash_a_worker(&["--data-dir", &data]);
}

#[test]
fn a_killed_worker_process_leaves_no_run_running_on_postgres() {
    let admin_url = std::env::var("TESSERA_TEST_DATABASE_URL")
        .unwrap_or_else(|_| crate::harness::DEFAULT_PG_URL.to_owned());
    let schema = format!("cli_{}", crate::harness::uuid_simple());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let reachable = runtime.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&admin_url).await.ok()?;
        sqlx::query(&format!("create schema {schema}")).execute(&mut conn).await.ok()
    });
    if reachable.is_none() {
        let in_ci = std::env::var("CI").is_ok_and(|v| v == "true");
        assert!(
            !in_ci && std::env::var("TESSERA_TEST_SKIP_POSTGRES").is_ok_and(|v| v == "1"),
            "PostgreSQL unreachable at {admin_url}"
        );
        eprintln!("SKIPPING PostgreSQL worker test: TESSERA_TEST_SKIP_POSTGRES=1");
        return;
    }
    let separator = if admin_url.contains('?') { '&' } else { '?' };
    let url = format!("{admin_url}{separator}options=-c%20search_path%3D{schema}");
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret");
    let data = dir.path().join("data");
    crash_a_worker(&[
        "--database-url",
        &url,
        "--secret-file",
        secret_file.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    runtime.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&admin_url).await.unwrap();
        sqlx::query(&format!("drop schema {schema} cascade")).execute(&mut conn).await.unwrap();
    });
}

/// The README's defaults: no flags, `./tessera-data` relative to where you run it, and the
/// embedded worker running an agent on a local repository.
#[test]
fn the_defaults_run_an_agent_from_a_relative_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = crate::harness::GitFixture::new();
    let mut init = Command::new(BIN);
    init.args(["init", "--team", "Acme", "--admin-email", "ops@acme.test", "--json"]).current_dir(dir.path());
    for var in ["TESSERA_DATA_DIR", "TESSERA_DATABASE_URL", "TESSERA_CONFIG", "TESSERA_SECRET"] {
        init.env_remove(var);
    }
    let init = json_of(&init.output().unwrap());
    let owner_key = init["apiKey"]["key"].as_str().unwrap().to_owned();
    let server = Server::start_in(Some(dir.path()), &[], &[], dir.path());
    assert!(dir.path().join("tessera-data/tessera.db").exists());
    let as_owner = [("TESSERA_URL", server.url.as_str()), ("TESSERA_API_KEY", owner_key.as_str())];
    let repo = format!("https://github.com/acme/widgets={}", fixture.clone_url);
    assert_eq!(
        code(&tessera(
            &["integrations", "add-git", "--scope", "team", "--name", "W", "--repo", &repo],
            &as_owner
        )),
        0
    );
    let body = serde_json::json!({
        "prompt": { "text": "@write HELLO.md\nhi\n@end\nAdded HELLO.md" },
        "source": { "repository": "https://github.com/acme/widgets", "ref": "main" },
    });
    let id =
        post_json(&format!("{}/v0/agents", server.url), &owner_key, body)["id"].as_str().unwrap().to_owned();
    let finished = wait_agent(&server.url, &owner_key, &id, |s| s != "CREATING" && s != "RUNNING");
    assert_eq!(finished["status"], "FINISHED", "{finished}\n{}", server.log());
    assert_eq!(
        fixture.file_on(finished["target"]["branchName"].as_str().unwrap(), "HELLO.md").as_deref(),
        Some("hi\n")
    );
}
