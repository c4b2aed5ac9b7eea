//! The operator's tenant backup routes: `GET /v1/admin/tenants/{id}/export`
//! streams every collection of a tenant as JSON Lines, and
//! `POST /v1/admin/tenants/{id}/import` reads such a stream back
//! (`aerolith backup` / `aerolith restore`).
//!
//! The format, one JSON object per line, collection by collection:
//!
//! ```text
//! {"collection":"users","indexes":[{"path":"age","unique":false}]}
//! {"collection":"users","document":{"_id":"u1","age":36}}
//! ```
//!
//! Memory stays bounded both ways: the export runs on a blocking thread that
//! hands [`EXPORT_CHUNK_BYTES`] chunks to the response through a channel of
//! [`EXPORT_CHANNEL_CHUNKS`] (a slow client slows the export down), and the
//! import parses the request body line by line and inserts
//! [`IMPORT_BATCH_DOCS`] documents per atomic batch. A line is at most the
//! request body limit. Import inserts: restoring into collections that
//! already hold the same ids is a conflict (batches before it stay
//! committed). Both count as the tenant's operations (reads, writes).

use std::io::Write;

use http_body::Body as _;
use std::pin::Pin;
use std::task::{Context, Poll};

use aerolith_tenancy::{Principal, TenancyError, TenantId};
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse as _, Response};
use axum::Json;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::app::ApiRouter;
use crate::auth::AdminAuth;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// Bytes the export buffers before handing a chunk to the response.
pub const EXPORT_CHUNK_BYTES: usize = 64 * 1024;
/// Chunks in flight between the export thread and the response.
pub const EXPORT_CHANNEL_CHUNKS: usize = 16;
/// Documents per atomic insert batch of an import.
pub const IMPORT_BATCH_DOCS: usize = 500;

type Chunk = Result<Bytes, std::io::Error>;

/// Streams every collection of a tenant as JSON Lines.
#[utoipa::path(
    get,
    path = "/v1/admin/tenants/{id}/export",
    tag = "admin",
    security(("admin_key" = [])),
    params(("id" = String, Path, description = "Tenant id or slug.")),
    responses(
        (status = 200, description = "JSON Lines: a `{collection, indexes}` line per collection, then its `{collection, document}` lines.", content_type = "application/x-ndjson"),
        (status = 401, description = "Missing or wrong admin key.", body = ErrorBody),
        (status = 404, description = "No such tenant.", body = ErrorBody)
    )
)]
pub async fn export_tenant(
    _admin: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let tenant = crate::admin::resolve_tenant(&state, &id).await?;
    let tenancy = state.tenancy()?.clone();
    // Resolve the handle and the collection list first, so a missing tenant
    // is a proper 404 rather than a cut-off stream.
    let (handle, collections) = tokio::task::spawn_blocking(move || {
        let handle = tenancy.handle(&Principal::Operator, tenant)?;
        let collections = handle.list_collections()?;
        Ok::<_, TenancyError>((handle, collections))
    })
    .await
    .map_err(ApiError::internal)??;
    let (sender, receiver) = mpsc::channel::<Chunk>(EXPORT_CHANNEL_CHUNKS);
    tokio::task::spawn_blocking(move || {
        let mut out = ChannelWriter {
            sender,
            buffer: Vec::with_capacity(EXPORT_CHUNK_BYTES),
        };
        let result = write_export(&handle, &collections, &mut out);
        match result {
            Ok(()) => {
                let _ = out.flush();
            }
            Err(err) => {
                tracing::warn!(%tenant, error = %err, "tenant export failed midway");
                // An error chunk aborts the response, so the client sees a
                // broken transfer rather than a short, valid-looking file.
                let _ = out
                    .sender
                    .blocking_send(Err(std::io::Error::other(err.to_string())));
            }
        }
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::new(ChannelBody { receiver }),
    )
        .into_response())
}

fn write_export(
    handle: &aerolith_tenancy::TenantHandle,
    collections: &[String],
    out: &mut ChannelWriter,
) -> Result<(), TenancyError> {
    let io = |e: std::io::Error| {
        TenancyError::Store(aerolith_tenancy::StoreError::Backend {
            source: Box::new(e),
        })
    };
    for collection in collections {
        let indexes: Vec<Value> = handle
            .list_indexes(collection)?
            .into_iter()
            .map(|index| json!({"path": index.path, "unique": index.unique}))
            .collect();
        let header = json!({"collection": collection, "indexes": indexes});
        serde_json::to_writer(&mut *out, &header).map_err(|e| io(e.into()))?;
        out.write_all(b"\n").map_err(io)?;
        let mut lines = DocumentLines::new(collection, &mut *out);
        handle.export_jsonl(collection, &mut lines)?;
        lines.finish().map_err(io)?;
    }
    Ok(())
}

/// Rewrites the engine's export lines (`{doc}\n`) into
/// `{"collection":..,"document":{doc}}\n`, one complete line at a time.
struct DocumentLines<'a> {
    prefix: Vec<u8>,
    partial: Vec<u8>,
    out: &'a mut ChannelWriter,
}

impl<'a> DocumentLines<'a> {
    fn new(collection: &str, out: &'a mut ChannelWriter) -> DocumentLines<'a> {
        let mut prefix = b"{\"collection\":".to_vec();
        prefix.extend_from_slice(
            serde_json::to_string(collection)
                .expect("a string serialises")
                .as_bytes(),
        );
        prefix.extend_from_slice(b",\"document\":");
        DocumentLines {
            prefix,
            partial: Vec::new(),
            out,
        }
    }

    fn finish(self) -> std::io::Result<()> {
        if self.partial.is_empty() {
            Ok(())
        } else {
            Err(std::io::Error::other("export ended inside a line"))
        }
    }
}

impl Write for DocumentLines<'_> {
    fn write(&mut self, mut buf: &[u8]) -> std::io::Result<usize> {
        let written = buf.len();
        while let Some(end) = buf.iter().position(|&b| b == b'\n') {
            self.out.write_all(&self.prefix)?;
            self.out.write_all(&self.partial)?;
            self.out.write_all(&buf[..end])?;
            self.out.write_all(b"}\n")?;
            self.partial.clear();
            buf = &buf[end + 1..];
        }
        self.partial.extend_from_slice(buf);
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Buffers writes and sends them as chunks; fails once the response is gone.
struct ChannelWriter {
    sender: mpsc::Sender<Chunk>,
    buffer: Vec<u8>,
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        if self.buffer.len() >= EXPORT_CHUNK_BYTES {
            self.flush()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(EXPORT_CHUNK_BYTES),
        ));
        self.sender.blocking_send(Ok(chunk)).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the client went away during the export",
            )
        })
    }
}

/// A response body fed by the export thread.
struct ChannelBody {
    receiver: mpsc::Receiver<Chunk>,
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        self.receiver
            .poll_recv(cx)
            .map(|chunk| chunk.map(|chunk| chunk.map(http_body::Frame::data)))
    }
}

/// What an import did.
#[derive(Debug, Default, serde::Serialize)]
struct ImportReport {
    collections: u64,
    indexes: u64,
    documents: u64,
    lines: u64,
}

/// Reads a tenant export (as written by the export route) into a tenant.
#[utoipa::path(
    post,
    path = "/v1/admin/tenants/{id}/import",
    tag = "admin",
    security(("admin_key" = [])),
    params(("id" = String, Path, description = "Tenant id or slug.")),
    request_body(content = String, content_type = "application/x-ndjson", description = "JSON Lines as written by the export route."),
    responses(
        (status = 200, description = "`collections`, `indexes`, `documents`, `lines`."),
        (status = 400, description = "A line is not valid export JSON (the message names it).", body = ErrorBody),
        (status = 404, description = "No such tenant.", body = ErrorBody),
        (status = 409, description = "A document id already exists.", body = ErrorBody)
    )
)]
pub async fn import_tenant(
    _admin: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let tenant = crate::admin::resolve_tenant(&state, &id).await?;
    let line_bytes_max =
        usize::try_from(state.limits().request_body_bytes_max).unwrap_or(usize::MAX);
    let mut importer = Importer {
        state: state.clone(),
        tenant,
        report: ImportReport::default(),
        batch_collection: String::new(),
        batch: Vec::new(),
    };
    let mut body = body;
    let mut pending: Vec<u8> = Vec::new();
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(|err| ApiError::BadRequest {
            reason: crate::error::BadRequestReason::InvalidParameter {
                detail: format!("reading the body: {err}"),
            },
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        pending.extend_from_slice(&data);
        let mut start = 0;
        while let Some(end) = pending[start..].iter().position(|&b| b == b'\n') {
            let line = pending[start..start + end].to_vec();
            start += end + 1;
            importer.line(&line).await?;
        }
        pending.drain(..start);
        if pending.len() > line_bytes_max {
            return Err(ApiError::PayloadTooLarge {
                size_bytes_max: state.limits().request_body_bytes_max,
            });
        }
    }
    if !pending.is_empty() {
        let line = std::mem::take(&mut pending);
        importer.line(&line).await?;
    }
    importer.flush().await?;
    Ok(Json(
        serde_json::to_value(&importer.report).map_err(ApiError::internal)?,
    ))
}

/// An export line.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportLine {
    collection: String,
    #[serde(default)]
    indexes: Option<Vec<IndexLine>>,
    #[serde(default)]
    document: Option<Value>,
}

#[derive(Debug, serde::Deserialize)]
struct IndexLine {
    path: String,
    #[serde(default)]
    unique: bool,
}

struct Importer {
    state: AppState,
    tenant: TenantId,
    report: ImportReport,
    batch_collection: String,
    batch: Vec<Value>,
}

impl Importer {
    async fn line(&mut self, line: &[u8]) -> Result<(), ApiError> {
        self.report.lines += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let line_no = self.report.lines;
        let parsed: ExportLine =
            serde_json::from_slice(line).map_err(|err| ApiError::BadRequest {
                reason: crate::error::BadRequestReason::InvalidParameter {
                    detail: format!("line {line_no}: not an export line: {err}"),
                },
            })?;
        match (parsed.indexes, parsed.document) {
            (Some(indexes), None) => {
                self.flush().await?;
                self.create_collection(parsed.collection, indexes).await
            }
            (None, Some(document)) => {
                if parsed.collection != self.batch_collection {
                    self.flush().await?;
                    self.batch_collection = parsed.collection;
                }
                self.batch.push(document);
                if self.batch.len() >= IMPORT_BATCH_DOCS {
                    self.flush().await?;
                }
                Ok(())
            }
            _ => Err(ApiError::BadRequest {
                reason: crate::error::BadRequestReason::InvalidParameter {
                    detail: format!("line {line_no}: needs exactly one of `indexes` or `document`"),
                },
            }),
        }
    }

    async fn create_collection(
        &mut self,
        collection: String,
        indexes: Vec<IndexLine>,
    ) -> Result<(), ApiError> {
        let tenant = self.tenant;
        let tenancy = self.state.tenancy()?.clone();
        let created = tokio::task::spawn_blocking(move || {
            let handle = tenancy.handle(&Principal::Operator, tenant)?;
            let mut created = (0u64, 0u64);
            if !handle.list_collections()?.contains(&collection) {
                handle.create_collection(&collection)?;
                created.0 += 1;
            }
            let existing: Vec<String> = handle
                .list_indexes(&collection)?
                .into_iter()
                .map(|index| index.path)
                .collect();
            for index in indexes {
                if !existing.contains(&index.path) {
                    handle.create_index(&collection, &index.path, index.unique)?;
                    created.1 += 1;
                }
            }
            Ok::<_, TenancyError>(created)
        })
        .await
        .map_err(ApiError::internal)??;
        self.report.collections += created.0;
        self.report.indexes += created.1;
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), ApiError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let docs = std::mem::take(&mut self.batch);
        let collection = self.batch_collection.clone();
        let tenant = self.tenant;
        let tenancy = self.state.tenancy()?.clone();
        let written = tokio::task::spawn_blocking(move || {
            let handle = tenancy.handle(&Principal::Operator, tenant)?;
            handle.insert_many(&collection, docs).map(|ids| ids.len())
        })
        .await
        .map_err(ApiError::internal)??;
        self.report.documents += written as u64;
        Ok(())
    }
}

/// Adds the export and import routes to `routes`.
pub fn transfer_routes(routes: ApiRouter) -> ApiRouter {
    routes
        .route::<__path_export_tenant, _, _>(export_tenant)
        .route::<__path_import_tenant, _, _>(import_tenant)
}
