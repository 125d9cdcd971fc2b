//! Clone URLs that need credentials: a real smart-HTTP git server (`git http-backend` behind
//! HTTP Basic auth, on 127.0.0.1), and workers that read the token from a credential file
//! instead of the URL.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};
use tessera_domain::team::Plan;

use crate::harness::{GitFixture, TestApp, wait_for_end};

const REPO: &str = "https://git.acme.test/acme/private";

#[derive(Clone)]
struct GitServer {
    root: std::path::PathBuf,
    expected_auth: String,
}

/// Runs `git http-backend` as CGI for one request, after checking Basic credentials.
async fn serve_git(
    State(server): State<GitServer>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let authorized =
        headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(server.expected_auth.as_str());
    if !authorized {
        return (StatusCode::UNAUTHORIZED, [("www-authenticate", "Basic realm=\"git\"")], "").into_response();
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let mut child = tokio::process::Command::new("git")
        .arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GIT_PROJECT_ROOT", &server.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("REQUEST_METHOD", method.as_str())
        .env("PATH_INFO", uri.path())
        .env("QUERY_STRING", uri.query().unwrap_or(""))
        .env("CONTENT_TYPE", header("content-type"))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
        .env("GIT_PROTOCOL", header("git-protocol"))
        .env("REMOTE_USER", "bot")
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("git http-backend");
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(&body).await.unwrap();
    }
    let output = child.wait_with_output().await.unwrap();
    let raw = output.stdout;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)))
        .expect("CGI headers");
    let (head, rest) =
        (String::from_utf8_lossy(&raw[..split.0]).into_owned(), raw[split.0 + split.1..].to_vec());
    let mut builder = Response::builder().status(200);
    for line in head.lines() {
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("status") {
                let code: u16 = value.trim().split(' ').next().unwrap().parse().unwrap();
                builder = builder.status(code);
            } else {
                builder = builder.header(name.trim(), value.trim());
            }
        }
    }
    builder.body(axum::body::Body::from(rest)).unwrap()
}

async fn start_git_server(fixture: &GitFixture, user: &str, password: &str) -> String {
    let server = GitServer {
        root: fixture.root().to_path_buf(),
        expected_auth: format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        ),
    };
    let router = axum::Router::new().fallback(serve_git).with_state(server);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{address}")
}

async fn run_agent(app: &TestApp, clone_url: &str) -> Value {
    let team = app.team("Acme", Plan::Enterprise, None).await;
    let owner = app.as_key(&team.owner_key);
    let integration = json!({ "provider": "git", "scope": "team", "name": "Private", "repositories": [{ "url": REPO, "cloneUrl": clone_url }] });
    assert_eq!(owner.post("/v1/integrations", integration).await.status, 201);
    let launched = owner
        .post("/v0/agents", json!({ "prompt": { "text": "@write SECURE.md\nok\n@end\nDone" }, "source": { "repository": REPO, "ref": "main" } }))
        .await;
    assert_eq!(launched.status, 201, "{}", launched.text);
    wait_for_end(&owner, launched.body["id"].as_str().unwrap()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_authenticate_to_git_servers_with_a_credential_file() {
    let fixture = GitFixture::new();
    let base = start_git_server(&fixture, "bot", "s3cret-token").await;
    let clone_url = format!("{base}/origin.git");
    let credentials_dir = tempfile::tempdir().unwrap();
    let credentials = credentials_dir.path().join("git-credentials");
    std::fs::write(&credentials, format!("{}\n", base.replace("http://", "http://bot:s3cret-token@")))
        .unwrap();

    let with_credentials =
        TestApp::spawn_with_worker_credentials(tessera_store::Backend::Sqlite, Some(credentials))
            .await
            .unwrap();
    let finished = run_agent(&with_credentials, &clone_url).await;
    assert_eq!(finished["status"], "FINISHED", "{finished}");
    let branch = finished["target"]["branchName"].as_str().unwrap();
    assert_eq!(
        fixture.file_on(branch, "SECURE.md").as_deref(),
        Some("ok\n"),
        "pushed through the authenticated server"
    );

    // Without the credential file the same run fails fast instead of prompting.
    let without = TestApp::spawn_with_worker_credentials(tessera_store::Backend::Sqlite, None).await.unwrap();
    let failed = run_agent(&without, &clone_url).await;
    assert_eq!(failed["status"], "ERROR", "{failed}");
}
