//! A small client for Tessera's HTTP API. Errors keep the server's code and status so the CLI
//! can pick an exit code.

use reqwest::Method;
use serde_json::Value;

use crate::exit::CliError;
use crate::settings::ClientSettings;

pub struct ApiClient {
    http: reqwest::Client,
    base_url: String,
    api_key: String,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient").field("base_url", &self.base_url).field("api_key", &"[REDACTED]").finish()
    }
}

impl ApiClient {
    pub fn new(settings: ClientSettings) -> anyhow::Result<ApiClient> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("tessera-cli/", env!("CARGO_PKG_VERSION")))
            .timeout(std::time::Duration::from_secs(60))
            .build()?;
        Ok(ApiClient { http, base_url: settings.base_url, api_key: settings.api_key })
    }

    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<Value> {
        self.send(Method::GET, path, query, None).await
    }

    pub async fn post(&self, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        self.send(Method::POST, path, &[], body).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.send(Method::PATCH, path, &[], Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.send(Method::DELETE, path, &[], None).await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base_url);
        let mut request = self.http.request(method, &url).bearer_auth(&self.api_key).query(query);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|err| CliError::Unreachable(without_url(&err)))?;
        let status = response.status();
        let text = response.text().await.map_err(|err| CliError::Unreachable(without_url(&err)))?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(value);
        }
        let error = &value["error"];
        Err(CliError::Api {
            status: status.as_u16(),
            code: error["code"].as_str().unwrap_or("unknown").to_owned(),
            message: error["message"].as_str().map_or_else(|| status.to_string(), str::to_owned),
        }
        .into())
    }
}

fn without_url(err: &reqwest::Error) -> String {
    let mut message = err.without_url_ref().to_string();
    let mut source = std::error::Error::source(err);
    while let Some(inner) = source {
        message.push_str(": ");
        message.push_str(&inner.to_string());
        source = inner.source();
    }
    message
}

trait WithoutUrl {
    fn without_url_ref(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    fn without_url_ref(&self) -> String {
        if self.is_connect() {
            "connection refused or failed".to_owned()
        } else if self.is_timeout() {
            "timed out".to_owned()
        } else {
            "request failed".to_owned()
        }
    }
}
