//! The operator's HTTP client, used by the CLI's remote subcommands
//! (`tenant`, `key`, `usage`, `invoice`, `backup`, `restore`).
//!
//! It sends the admin key as a bearer token and turns the server's
//! `{"error":{"code","message"}}` bodies into [`ClientError::Api`], so the
//! CLI prints `not_found (404): route GET /v1/... not found` instead of a
//! raw response. Blocking (ureq): the CLI does one request at a time.

use std::io::{Read, Write};
use std::time::Duration;

use serde_json::Value;

/// Deadline for one request (backups and restores of large tenants included).
pub const REQUEST_TIMEOUT_S: u64 = 3_600;
/// Largest JSON response body the client reads into memory.
pub const RESPONSE_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// Bytes copied per step when streaming a backup, between progress updates.
const STREAM_CHUNK_BYTES: usize = 64 * 1024;

/// Why a request to the server failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server could not be reached or the exchange broke off.
    #[error("cannot reach {url}: {detail}")]
    Transport {
        /// The URL requested.
        url: String,
        /// What failed.
        detail: String,
    },
    /// The server answered with an API error.
    #[error("{code} ({status}): {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The error code (`not_found`, `unauthenticated`, ...).
        code: String,
        /// The server's message.
        message: String,
    },
    /// The server answered with something that is not the expected JSON.
    #[error("unexpected response from {url} (HTTP {status}): {snippet}")]
    UnexpectedResponse {
        /// The URL requested.
        url: String,
        /// HTTP status.
        status: u16,
        /// The start of the body.
        snippet: String,
    },
    /// A local file could not be read or written.
    #[error("{action} {path}: {source}")]
    File {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// A client for the server's admin API.
#[derive(Debug, Clone)]
pub struct AdminClient {
    base_url: String,
    admin_key: Option<String>,
    agent: ureq::Agent,
}

/// Progress callback of the streaming calls: total bytes moved so far.
pub type Progress<'a> = &'a mut dyn FnMut(u64);

impl AdminClient {
    /// A client for the server at `base_url` (`http://127.0.0.1:7070`).
    pub fn new(base_url: &str, admin_key: Option<String>) -> AdminClient {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(REQUEST_TIMEOUT_S)))
            .build()
            .into();
        AdminClient {
            base_url: base_url.trim_end_matches('/').to_owned(),
            admin_key,
            agent,
        }
    }

    /// `GET path`, JSON response.
    pub fn get(&self, path: &str) -> Result<Value, ClientError> {
        let url = self.url(path);
        let response = self.authorize(self.agent.get(&url)).call();
        self.json_response(&url, response)
    }

    /// `DELETE path`, JSON response (`null` for an empty body).
    pub fn delete(&self, path: &str) -> Result<Value, ClientError> {
        let url = self.url(path);
        let response = self.authorize(self.agent.delete(&url)).call();
        self.json_response(&url, response)
    }

    /// `POST path` with a JSON body, JSON response.
    pub fn post(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        let url = self.url(path);
        let response = self.authorize(self.agent.post(&url)).send_json(body);
        self.json_response(&url, response)
    }

    /// `GET path`, streaming the body into `out`; returns the bytes written.
    pub fn download(
        &self,
        path: &str,
        out: &mut dyn Write,
        progress: Progress<'_>,
    ) -> Result<u64, ClientError> {
        let url = self.url(path);
        let mut response = self
            .authorize(self.agent.get(&url))
            .call()
            .map_err(|e| transport(&url, e))?;
        let status = response.status().as_u16();
        if status >= 400 {
            let text = response.body_mut().read_to_string().unwrap_or_default();
            return Err(api_error(&url, status, &text));
        }
        let mut reader = response.body_mut().as_reader();
        let mut buffer = vec![0u8; STREAM_CHUNK_BYTES];
        let mut total = 0u64;
        loop {
            let n = reader.read(&mut buffer).map_err(|e| transport(&url, e))?;
            if n == 0 {
                break;
            }
            out.write_all(&buffer[..n])
                .map_err(|source| ClientError::File {
                    action: "write",
                    path: "output".to_owned(),
                    source,
                })?;
            total += n as u64;
            progress(total);
        }
        Ok(total)
    }

    /// `POST path` with `body` streamed as `content_type`, JSON response.
    pub fn upload(
        &self,
        path: &str,
        content_type: &str,
        body: &mut dyn Read,
    ) -> Result<Value, ClientError> {
        let url = self.url(path);
        let response = self
            .authorize(self.agent.post(&url))
            .header("content-type", content_type)
            .send(ureq::SendBody::from_reader(body));
        self.json_response(&url, response)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    fn authorize<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.admin_key {
            Some(key) => request.header("authorization", format!("Bearer {key}")),
            None => request,
        }
    }

    fn json_response(
        &self,
        url: &str,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Value, ClientError> {
        let mut response = response.map_err(|e| transport(url, e))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(RESPONSE_BYTES_MAX)
            .read_to_string()
            .map_err(|e| transport(url, e))?;
        if status >= 400 {
            return Err(api_error(url, status, &text));
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|_| ClientError::UnexpectedResponse {
            url: url.to_owned(),
            status,
            snippet: snippet(&text),
        })
    }
}

fn transport(url: &str, err: impl std::fmt::Display) -> ClientError {
    ClientError::Transport {
        url: url.to_owned(),
        detail: err.to_string(),
    }
}

/// The server's `{"error":...}` body as a [`ClientError::Api`], or the raw
/// text if the body is not in that shape.
fn api_error(url: &str, status: u16, text: &str) -> ClientError {
    let parsed: Option<(String, String)> =
        serde_json::from_str::<Value>(text).ok().and_then(|body| {
            let error = body.get("error")?;
            Some((
                error.get("code")?.as_str()?.to_owned(),
                error.get("message")?.as_str()?.to_owned(),
            ))
        });
    match parsed {
        Some((code, message)) => ClientError::Api {
            status,
            code,
            message,
        },
        None => ClientError::UnexpectedResponse {
            url: url.to_owned(),
            status,
            snippet: snippet(text),
        },
    }
}

fn snippet(text: &str) -> String {
    const SNIPPET_CHARS_MAX: usize = 200;
    text.chars().take(SNIPPET_CHARS_MAX).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_error_bodies_become_readable_errors() {
        let err = api_error(
            "http://x/y",
            404,
            r#"{"error":{"code":"not_found","message":"route GET /y not found"}}"#,
        );
        assert_eq!(err.to_string(), "not_found (404): route GET /y not found");
    }

    #[test]
    fn non_api_error_bodies_are_shown_raw() {
        let err = api_error("http://x/y", 502, "Bad Gateway");
        assert!(matches!(
            err,
            ClientError::UnexpectedResponse { status: 502, .. }
        ));
        assert!(err.to_string().contains("Bad Gateway"));
    }

    #[test]
    fn unreachable_server_is_a_transport_error() {
        // Port 1 on loopback: nothing listens there, the connect is refused
        // at once, no network involved.
        let client = AdminClient::new("http://127.0.0.1:1/", None);
        let err = client.get("/healthz").expect_err("refused");
        assert!(matches!(err, ClientError::Transport { .. }), "{err:?}");
    }
}
