//! Mirroring on the native path: the same plan, copies and pairing as the hyper path, fed
//! from the engine's buffers.
//!
//! Only a request the route's plan samples pays for this: its head (as sent to the primary)
//! and the primary's response head are turned into `http` types once, and the bodies are
//! copied, capped, as they stream. Everything after — shadow dispatch, pairing, comparison —
//! is the shared machinery of [`crate::shadow`].

use super::request::Request;
use crate::proxy::Proxy;
use crate::shadow::fields::Fields;
use crate::shadow::pair::{PrimarySink, PrimarySlot};
use crate::shadow::{RequestHead, RequestTee};
use crate::tee::Tee;
use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{Method, StatusCode};
use std::mem::MaybeUninit;
use std::time::Instant;

/// Header fields read back from a head this engine wrote: the client's (at most 128) plus
/// the handful the proxy adds.
const MAX_FIELDS: usize = 160;

/// Asks the route's mirror plan about a request; when it is sampled, the capped copy of its
/// body (fed by the engine, complete when the body is) and the slot the primary's answer is
/// published in.
pub(super) fn plan(
    proxy: &Proxy,
    request: &Request,
    upstream_head: &[u8],
) -> Option<(Tee<RequestTee>, PrimarySlot)> {
    // One copy of the head; every value is a view into it, not an allocation of its own.
    let head = Bytes::copy_from_slice(upstream_head);
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_FIELDS];
    let mut parsed = httparse::Request::new(&mut []);
    if !matches!(
        parsed.parse_with_uninit_headers(&head, &mut fields),
        Ok(httparse::Status::Complete(_))
    ) {
        return None;
    }
    let method = Method::from_bytes(parsed.method?.as_bytes()).ok()?;
    let path_and_query = PathAndQuery::try_from(parsed.path?).ok()?;
    let headers = Fields::from_parsed(
        &head,
        head.clone(),
        parsed.headers.len(),
        parsed
            .headers
            .iter()
            .map(|field| (field.name.as_bytes(), field.value)),
    );
    let (route, _) = request.route;
    let mirror = proxy.mirror();
    let (plan, slot) = mirror.plan(
        route,
        request.route,
        &method,
        path_and_query.path(),
        path_and_query.query(),
        &headers,
    )?;
    let request_id = std::str::from_utf8(&upstream_head[request.request_id.clone()])
        .unwrap_or_default()
        .to_string();
    let request_head = RequestHead {
        method,
        path_and_query: Some(path_and_query),
        headers,
        request_id,
    };
    let copy = Tee::new(
        mirror.max_body_bytes(route),
        RequestTee::new(mirror.clone(), plan, request_head),
    );
    Some((copy, slot))
}

/// The capped copy of the primary's response for comparison: its status, its end-to-end
/// fields as the upstream sent them (kept while its head was parsed), and (fed by the
/// engine) its decoded body.
pub(super) fn capture(
    proxy: &Proxy,
    slot: PrimarySlot,
    status: StatusCode,
    headers: Fields,
    sent: Instant,
) -> Tee<PrimarySink> {
    Tee::new(
        proxy.max_response_body_bytes(),
        PrimarySink::new(slot, status, headers, sent),
    )
}
