//! Mirroring on the native path: the same plan, copies and pairing as the hyper path, fed
//! from the engine's buffers.
//!
//! Only a request the route's plan samples pays for this: its head (as sent to the primary)
//! and the primary's response head are copied once each, their fields kept as views into
//! the copies ([`Fields`], from spans recorded while the heads were written or parsed), and
//! the bodies are copied, capped, as they stream. Everything after — shadow dispatch,
//! pairing, comparison — is the shared machinery of [`crate::shadow`].

use super::request::Request;
use crate::context::Context;
use crate::message::fields::{Fields, FieldsView};
use crate::message::pair::{PrimarySink, PrimarySlot};
use crate::message::tee::Tee;
use crate::shadow::{RequestHead, RequestTee};
use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{Method, StatusCode, Version};
use std::time::Instant;

/// Asks the route's mirror plan about a request; when it is sampled, the capped copy of its
/// body (fed by the engine, complete when the body is) and the slot the primary's answer is
/// published in.
pub(super) fn plan(
    context: &Context,
    request: &mut Request,
    upstream_head: &[u8],
) -> Option<(Tee<RequestTee>, PrimarySlot)> {
    // The plan looks at the head where it was written, through the spans `prepare`
    // recorded: a request it does not sample copies nothing.
    let method = Method::from_bytes(upstream_head.get(request.method_text.clone())?).ok()?;
    let target = std::str::from_utf8(upstream_head.get(request.target.clone())?).ok()?;
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    let (route, _) = request.route;
    let mirror = context.mirror();
    let (plan, slot) = mirror.plan(
        route,
        request.route,
        &method,
        path,
        query,
        &FieldsView::new(upstream_head, &request.fields),
    )?;
    // Sampled: one copy of the head, the recorded fields views into it, nothing parsed again.
    let head = Bytes::copy_from_slice(upstream_head);
    // In range: `target` was read from this range of the same bytes above.
    let path_and_query =
        PathAndQuery::from_maybe_shared(head.slice(request.target.clone())).ok()?;
    let headers = Fields::from_spans(head, std::mem::take(&mut request.fields));
    let request_id = upstream_head
        .get(request.request_id.clone())
        .and_then(|id| std::str::from_utf8(id).ok())
        .unwrap_or_default()
        .to_string();
    let request_head = RequestHead {
        method,
        // The engine serves HTTP/1.1 only; the hyper path takes every other version.
        version: Version::HTTP_11,
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
    context: &Context,
    slot: PrimarySlot,
    status: StatusCode,
    headers: Fields,
    sent: Instant,
) -> Tee<PrimarySink> {
    Tee::new(
        context.max_response_body_bytes(),
        PrimarySink::new(
            slot,
            status,
            headers,
            sent,
            context.mirror().budget().clone(),
        ),
    )
}
