//! Sandbox calls (`/v1/sandboxes…`). Records are returned as JSON objects, as the server sends
//! them (`id, name, template, state, created_at, attachments`; attachment records per the SPEC).

use reqwest::Method;
use serde_json::{json, Value};

use crate::{Client, Result};

/// A volume to mount in a sandbox.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SandboxMount {
    /// Volume name.
    pub volume: String,
    /// Absolute path inside the sandbox.
    pub mount_path: String,
    pub read_only: bool,
    pub subpath: Option<String>,
}

/// What a command run in a sandbox did.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ExecOutput {
    pub stdout: String,
    pub stderr: String,
    pub exit_code: i32,
    #[serde(default)]
    pub timed_out: bool,
    /// The output was longer than the server keeps and was cut.
    #[serde(default)]
    pub truncated: bool,
}

/// How to run a command in a sandbox (beyond its arguments).
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// Added to (and overriding) the sandbox's environment.
    pub env: std::collections::BTreeMap<String, String>,
    /// Working directory inside the sandbox.
    pub cwd: Option<String>,
    /// Text fed to the command's standard input.
    pub stdin: Option<String>,
    /// The command is killed after this long (`timed_out` is then set).
    pub timeout: Option<std::time::Duration>,
}

fn sandbox_url(id: &str, rest: &str) -> String {
    format!("/v1/sandboxes/{}{rest}", urlencode(id))
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Client {
    /// `POST /v1/sandboxes`: the new sandbox's record.
    pub async fn create_sandbox(
        &self,
        template: &str,
        mounts: &[SandboxMount],
        name: Option<&str>,
        env: &std::collections::BTreeMap<String, String>,
        timeout: Option<std::time::Duration>,
    ) -> Result<Value> {
        let req = self.request(Method::POST, "/v1/sandboxes").json(&json!({
            "template": template,
            "volumes": mounts,
            "name": name,
            "env": env,
            "timeout": timeout.map(|t| t.as_secs()),
        }));
        self.json(req).await
    }

    /// `GET /v1/sandboxes`: the caller's sandboxes.
    pub async fn list_sandboxes(&self) -> Result<Vec<Value>> {
        let v: Value = self
            .json(self.request(Method::GET, "/v1/sandboxes"))
            .await?;
        Ok(v["sandboxes"].as_array().cloned().unwrap_or_default())
    }

    /// `GET /v1/sandboxes/{id}`.
    pub async fn get_sandbox(&self, id: &str) -> Result<Value> {
        self.json(self.request(Method::GET, &sandbox_url(id, "")))
            .await
    }

    /// `DELETE /v1/sandboxes/{id}`.
    pub async fn destroy_sandbox(&self, id: &str) -> Result<()> {
        self.send(self.request(Method::DELETE, &sandbox_url(id, "")))
            .await
            .map(drop)
    }

    /// `POST /v1/sandboxes/{id}/exec` with an argument list.
    pub async fn exec(&self, id: &str, argv: &[String]) -> Result<ExecOutput> {
        self.exec_with(id, argv, &ExecOptions::default()).await
    }

    /// `POST /v1/sandboxes/{id}/exec` with an argument list, environment, working directory,
    /// standard input and timeout.
    pub async fn exec_with(
        &self,
        id: &str,
        argv: &[String],
        opts: &ExecOptions,
    ) -> Result<ExecOutput> {
        let req = self
            .request(Method::POST, &sandbox_url(id, "/exec"))
            .json(&json!({
                "cmd": argv,
                "env": opts.env,
                "cwd": opts.cwd,
                "stdin": opts.stdin,
                "timeout": opts.timeout.map(|t| t.as_secs_f64()),
            }));
        self.json(req).await
    }

    /// `GET /v1/sandboxes/{id}/files/content?path=`: a file as the sandbox sees it.
    pub async fn sandbox_read(&self, id: &str, path: &str) -> Result<bytes::Bytes> {
        let req = self
            .request(Method::GET, &sandbox_url(id, "/files/content"))
            .query(&[("path", path)]);
        let resp = self.send(req).await?;
        resp.bytes().await.map_err(|e| self.transport_error(e))
    }

    /// `PUT /v1/sandboxes/{id}/files/content?path=`: writes (replaces) a file inside the
    /// sandbox.
    pub async fn sandbox_write(&self, id: &str, path: &str, data: Vec<u8>) -> Result<()> {
        let req = self
            .request(Method::PUT, &sandbox_url(id, "/files/content"))
            .query(&[("path", path)])
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(data);
        self.send(req).await.map(drop)
    }

    /// `GET /v1/sandboxes/{id}/files/list?path=`: directory entries (`name, kind, size`).
    pub async fn sandbox_list(&self, id: &str, path: &str) -> Result<Vec<Value>> {
        let req = self
            .request(Method::GET, &sandbox_url(id, "/files/list"))
            .query(&[("path", path)]);
        let v: Value = self.json(req).await?;
        Ok(v["entries"].as_array().cloned().unwrap_or_default())
    }

    /// `POST /v1/sandboxes/{id}/attachments`: the attachment record.
    pub async fn attach(&self, id: &str, mount: &SandboxMount) -> Result<Value> {
        let req = self
            .request(Method::POST, &sandbox_url(id, "/attachments"))
            .json(mount);
        self.json(req).await
    }

    /// `DELETE /v1/sandboxes/{id}/attachments?mount_path=`: the released attachment record.
    pub async fn detach(&self, id: &str, mount_path: &str) -> Result<Value> {
        let req = self
            .request(Method::DELETE, &sandbox_url(id, "/attachments"))
            .query(&[("mount_path", mount_path)]);
        self.json(req).await
    }

    /// `GET /v1/sandboxes/{id}/attachments`.
    pub async fn attachments(&self, id: &str) -> Result<Vec<Value>> {
        let v: Value = self
            .json(self.request(Method::GET, &sandbox_url(id, "/attachments")))
            .await?;
        Ok(v["attachments"].as_array().cloned().unwrap_or_default())
    }

    /// `POST /v1/sandboxes/{id}/{op}` for `pause`, `resume`, `hibernate`, `fork`: the record
    /// (of the new sandbox, for `fork`).
    pub async fn sandbox_lifecycle(&self, id: &str, op: &str) -> Result<Value> {
        self.json(self.request(Method::POST, &sandbox_url(id, &format!("/{op}"))))
            .await
    }
}
