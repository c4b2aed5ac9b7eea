//! Hooks for the fuzz targets in `fuzz/` and the corpus-replay test: the
//! decoding of every JSON request body the routes take, run on bytes already
//! in memory, without a socket, a state or a runtime. It is exactly what
//! [`crate::JsonBody`] and the handlers do before they touch a tenant (the
//! depth scan, serde into the route's body type, the query route's spec
//! parsing), plus, for the insert route, the document checks the engine
//! applies on insert. Not a stable API.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::admin::{CreateKeyRequest, CreateTenantRequest, SuspendRequest, UpdateTenantRequest};
use crate::error::ApiError;
use crate::json::parse_json_body;
use crate::tenant::{
    bulk_documents, CreateCollectionRequest, CreateIndexRequest, QueryRequest, TokenRequest,
};

/// A route whose JSON body [`decode_route_body`] decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RouteBody {
    /// `POST /v1/collections`.
    CreateCollection,
    /// `POST /v1/collections/{name}/docs` (one document or `{"documents": [...]}`);
    /// also the body shape of replace and patch, which take any JSON value.
    InsertDocument,
    /// `POST /v1/collections/{name}/query`.
    Query,
    /// `POST /v1/collections/{name}/indexes`.
    CreateIndex,
    /// `POST /v1/tokens` and `POST /v1/tokens/refresh`.
    Token,
    /// `POST /v1/admin/tenants`.
    CreateTenant,
    /// `PATCH /v1/admin/tenants/{id}`.
    UpdateTenant,
    /// `POST /v1/admin/tenants/{id}/suspend`.
    Suspend,
    /// `POST /v1/admin/tenants/{id}/keys`.
    CreateKey,
}

/// Every [`RouteBody`], for targets that pick one from their input.
pub const ROUTE_BODIES: [RouteBody; 9] = [
    RouteBody::CreateCollection,
    RouteBody::InsertDocument,
    RouteBody::Query,
    RouteBody::CreateIndex,
    RouteBody::Token,
    RouteBody::CreateTenant,
    RouteBody::UpdateTenant,
    RouteBody::Suspend,
    RouteBody::CreateKey,
];

fn decode<T: DeserializeOwned>(bytes: &[u8], depth_max: u32) -> Result<T, ApiError> {
    parse_json_body(bytes, depth_max)
}

/// Decodes `bytes` as the body of `route` with the nesting limit
/// `depth_max`, as the server would before running the handler; returns the
/// error the client would get, if any.
pub fn decode_route_body(route: RouteBody, bytes: &[u8], depth_max: u32) -> Result<(), ApiError> {
    match route {
        RouteBody::CreateCollection => {
            decode::<CreateCollectionRequest>(bytes, depth_max).map(drop)
        }
        RouteBody::InsertDocument => {
            let body: Value = decode(bytes, depth_max)?;
            let documents = bulk_documents(&body).unwrap_or_else(|| vec![body]);
            for document in &documents {
                aerolith_core::limits::validate_document(document).map_err(|err| {
                    ApiError::Unprocessable {
                        detail: err.to_string(),
                    }
                })?;
            }
            Ok(())
        }
        RouteBody::Query => QueryRequest::from_body(decode(bytes, depth_max)?).map(drop),
        RouteBody::CreateIndex => decode::<CreateIndexRequest>(bytes, depth_max).map(drop),
        RouteBody::Token => decode::<TokenRequest>(bytes, depth_max).map(drop),
        RouteBody::CreateTenant => decode::<CreateTenantRequest>(bytes, depth_max).map(drop),
        RouteBody::UpdateTenant => decode::<UpdateTenantRequest>(bytes, depth_max).map(drop),
        RouteBody::Suspend => decode::<SuspendRequest>(bytes, depth_max).map(drop),
        RouteBody::CreateKey => decode::<CreateKeyRequest>(bytes, depth_max).map(drop),
    }
}
