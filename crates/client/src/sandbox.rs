//! Sandbox calls (`/v1/sandboxes…`), with the wire types of `nullspace_core::wire`.

use nullspace_core::wire::{
    Attachment, AttachmentList, Command, CreateSandbox, ExecRequest, Sandbox, SandboxDirEntry,
    SandboxDirList, SandboxList,
};
use reqwest::Method;

use crate::{Client, Result};

pub use nullspace_core::wire::{ExecOutput, VolumeMount as SandboxMount};

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

pub(crate) fn urlencode(s: &str) -> String {
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
    ) -> Result<Sandbox> {
        self.create_sandbox_with(&CreateSandbox {
            template: template.to_owned(),
            volumes: mounts.to_vec(),
            name: name.map(str::to_owned),
            env: env.clone(),
            timeout: timeout.map(|t| t.as_secs()),
            cpu: None,
            memory: None,
            disk: None,
            runtime: None,
        })
        .await
    }

    /// `POST /v1/sandboxes` with every field of the request (limits included).
    pub async fn create_sandbox_with(&self, body: &CreateSandbox) -> Result<Sandbox> {
        let req = self.request(Method::POST, "/v1/sandboxes").json(body);
        self.json(req).await
    }

    /// `GET /v1/sandboxes`: the caller's sandboxes.
    pub async fn list_sandboxes(&self) -> Result<Vec<Sandbox>> {
        let list: SandboxList = self
            .json(self.request(Method::GET, "/v1/sandboxes"))
            .await?;
        Ok(list.sandboxes)
    }

    /// `GET /v1/sandboxes/{id}`.
    pub async fn get_sandbox(&self, id: &str) -> Result<Sandbox> {
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
            .json(&ExecRequest {
                cmd: Command::Argv(argv.to_vec()),
                env: opts.env.clone(),
                cwd: opts.cwd.clone(),
                stdin: opts.stdin.clone(),
                timeout: opts.timeout.map(|t| t.as_secs_f64()),
            });
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
    pub async fn sandbox_list(&self, id: &str, path: &str) -> Result<Vec<SandboxDirEntry>> {
        let req = self
            .request(Method::GET, &sandbox_url(id, "/files/list"))
            .query(&[("path", path)]);
        let list: SandboxDirList = self.json(req).await?;
        Ok(list.entries)
    }

    /// `POST /v1/sandboxes/{id}/attachments`: the attachment record.
    pub async fn attach(&self, id: &str, mount: &SandboxMount) -> Result<Attachment> {
        let req = self
            .request(Method::POST, &sandbox_url(id, "/attachments"))
            .json(mount);
        self.json(req).await
    }

    /// `DELETE /v1/sandboxes/{id}/attachments?mount_path=`: the released attachment record.
    pub async fn detach(&self, id: &str, mount_path: &str) -> Result<Attachment> {
        let req = self
            .request(Method::DELETE, &sandbox_url(id, "/attachments"))
            .query(&[("mount_path", mount_path)]);
        self.json(req).await
    }

    /// `GET /v1/sandboxes/{id}/attachments`.
    pub async fn attachments(&self, id: &str) -> Result<Vec<Attachment>> {
        let list: AttachmentList = self
            .json(self.request(Method::GET, &sandbox_url(id, "/attachments")))
            .await?;
        Ok(list.attachments)
    }

    /// `POST /v1/sandboxes/{id}/{op}` for `pause`, `resume`, `hibernate`, `fork`: the record
    /// (of the new sandbox, for `fork`).
    pub async fn sandbox_lifecycle(&self, id: &str, op: &str) -> Result<Sandbox> {
        self.json(self.request(Method::POST, &sandbox_url(id, &format!("/{op}"))))
            .await
    }
}
