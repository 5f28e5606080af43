//! The HTTP edge of `nullspace server`: axum routes under `/v1`, bearer-key extraction, the
//! error → status mapping, OpenAPI, and the wire handling of tus, signed URLs, ranges and
//! Server-Sent Events.
//!
//! Architecture invariant: this crate only translates. A handler parses the request into
//! core types, calls one use case on the [`Node`] (`nullspace-node`), and shapes the answer;
//! it holds no state of its own, opens no database and starts no sandbox. Only this crate
//! knows HTTP statuses.

mod access;
mod admin;
mod auth;
mod console;
mod content;
mod edge;
mod error;
mod files;
mod keys;
mod metrics;
mod openapi;
mod openapi_contract;
mod sandboxes;
mod server;
mod signed;
mod tus;
mod volumes;
mod watch;

pub use edge::{CorsOrigins, HttpOptions};
pub use error::status_of;
pub use nullspace_node::{
    ConnectionLimits, Node, SandboxLimits, SandboxRuntime, ServerConfig, VolumeBackend,
};
pub use openapi::{openapi_document, router};
pub use server::{run, run_with, Observability};

/// What every handler shares: the server's node.
pub(crate) type AppState = Node;
