//! The decision table: every way a sampled request's body copy can end, on both engines,
//! and the one outcome each is counted as. Each row drives a real tee the way its engine
//! does; [`copy_outcome`] turns what the tee reported into the outcome. One way is not a
//! row: hyper dropping a request whose h2 client reset it while the upload waited on the
//! primary (a reader's drop, turned into the client's by `RequestTee::watch_source`); it
//! needs hyper, and is tested end to end in `tests/mirror_primary_failed.rs`.

use super::copy_outcome;
use crate::message::budget::Budget;
use crate::message::tee::{Tee, TeeBody, TeeResult, TeeSink};
use crate::telemetry::MirrorOutcome;
use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

/// The copy's cap in the table (the over-cap rows send more).
const CAP: usize = 8;

/// What the tee reported, every time it did (exactly once is asserted).
#[derive(Clone)]
struct Reported(Arc<Mutex<Vec<TeeResult>>>, Arc<Budget>);

impl TeeSink for Reported {
    fn finish(self, result: TeeResult) {
        if let Ok(mut results) = self.0.lock() {
            results.push(result);
        }
    }

    /// Charged like the mirror's request copies.
    fn budget(&self) -> Option<&Arc<Budget>> {
        Some(&self.1)
    }
}

/// A client's body: the given pieces one per poll, then (with `fails`) an error, else the end.
struct ClientBody {
    pieces: VecDeque<&'static str>,
    fails: bool,
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        Poll::Ready(match this.pieces.pop_front() {
            Some(piece) => Some(Ok(Frame::data(Bytes::from_static(piece.as_bytes())))),
            None if this.fails => Some(Err(std::io::Error::other("connection reset"))),
            None => None,
        })
    }
}

/// How the body's streaming ends, as the engine in the row's case does it.
#[derive(Debug, Clone, Copy)]
enum Ending {
    /// hyper path: the reader polls to the end.
    ReadToEnd,
    /// hyper path: the client's body (hyper's `Incoming` under `ClientBody`) returns an
    /// error after `read` pieces; the reader stops there.
    SourceErrors { read: usize },
    /// native engine: the engine reads the client itself and tells the copy it failed
    /// (`client_failed`), after feeding `read` pieces.
    SourceFailed { read: usize },
    /// Either engine: the reader lets the body go after `read` pieces (the engine drops its
    /// copy, or the upstream client drops the body).
    ReaderDrops { read: usize },
}

/// One row: the case, what the client sends, whether its body fails, how it ends, and the
/// outcome (`None`: the copy is whole and goes to the shadows).
type Row = (
    &'static str,
    &'static [&'static str],
    bool,
    Ending,
    Option<MirrorOutcome>,
);

const CLIENT: Option<MirrorOutcome> = Some(MirrorOutcome::DroppedClientAborted);
const PRIMARY: Option<MirrorOutcome> = Some(MirrorOutcome::DroppedPrimaryFailed);
const PART: &[&str] = &["abc", "def", "gh"];

const TABLE: &[Row] = &[
    ("whole body", PART, false, Ending::ReadToEnd, None),
    (
        "hyper: the client closes or resets mid-body (HTTP/1 or its h2 stream, gRPC too)",
        PART,
        true,
        Ending::SourceErrors { read: 2 },
        CLIENT,
    ),
    (
        "hyper: the client pauses past client_body_timeout (ClientBody's error)",
        PART,
        true,
        Ending::SourceErrors { read: 1 },
        CLIENT,
    ),
    (
        "hyper: the client breaks its chunked framing (Incoming's error)",
        PART,
        true,
        Ending::SourceErrors { read: 0 },
        CLIENT,
    ),
    (
        "native: the client closes or resets mid-body (UploadFailure::Client)",
        PART,
        true,
        Ending::SourceFailed { read: 2 },
        CLIENT,
    ),
    (
        "native: the client pauses past client_body_timeout (UploadFailure::ClientPaused)",
        PART,
        true,
        Ending::SourceFailed { read: 1 },
        CLIENT,
    ),
    (
        "native: the primary resets or closes mid-body (UploadFailure::Upstream)",
        PART,
        false,
        Ending::ReaderDrops { read: 2 },
        PRIMARY,
    ),
    (
        "native: the primary answers before the body is all sent (Wrote::Answered)",
        PART,
        false,
        Ending::ReaderDrops { read: 1 },
        PRIMARY,
    ),
    (
        "native: the primary is unreachable, the body not whole in hand",
        PART,
        false,
        Ending::ReaderDrops { read: 0 },
        PRIMARY,
    ),
    (
        "hyper, HTTP/1 primary: reset, closed or stalled past response_timeout mid-body",
        PART,
        false,
        Ending::ReaderDrops { read: 2 },
        PRIMARY,
    ),
    (
        "hyper, HTTP/1 primary: answers before reading the whole body",
        PART,
        false,
        Ending::ReaderDrops { read: 1 },
        PRIMARY,
    ),
    (
        "hyper, h2 primary (gRPC too): resets the stream or the connection mid-body",
        PART,
        false,
        Ending::ReaderDrops { read: 1 },
        PRIMARY,
    ),
    (
        "hyper: the primary is unreachable before the body was polled",
        PART,
        false,
        Ending::ReaderDrops { read: 0 },
        PRIMARY,
    ),
    (
        "MirrorLayer: the wrapped service answers without reading the body",
        PART,
        false,
        Ending::ReaderDrops { read: 0 },
        PRIMARY,
    ),
    (
        "over the cap, then the client aborts: counted for the cap, once",
        &["abcdef", "ghijkl", "mn"],
        true,
        Ending::SourceErrors { read: 2 },
        Some(MirrorOutcome::DroppedBodyTooLarge),
    ),
    (
        "over the cap, then the primary fails: counted for the cap, once",
        &["abcdef", "ghijkl", "mn"],
        false,
        Ending::ReaderDrops { read: 2 },
        Some(MirrorOutcome::DroppedBodyTooLarge),
    ),
];

/// Streams a row's body through a tee as its engine would; what the tee reported.
async fn run(pieces: &'static [&'static str], fails: bool, ending: Ending) -> Vec<TeeResult> {
    let reported = Reported(Arc::default(), Budget::new(1 << 20, metrics::Gauge::noop()));
    let tee = Tee::new(CAP, reported.clone());
    // A client that fails sends what the row reads of its body, then the error.
    let sent = match ending {
        Ending::SourceErrors { read } if fails => read,
        _ => pieces.len(),
    };
    let client = ClientBody {
        pieces: pieces.iter().copied().take(sent).collect(),
        fails,
    };
    match ending {
        Ending::ReadToEnd => {
            let read = TeeBody::new(client, Some(tee)).collect().await;
            assert!(read.is_ok());
        }
        Ending::SourceErrors { read } | Ending::ReaderDrops { read } => {
            let mut body = TeeBody::new(client, Some(tee));
            for _ in 0..read {
                assert!(matches!(body.frame().await, Some(Ok(_))));
            }
            if let Ending::SourceErrors { .. } = ending {
                assert!(matches!(body.frame().await, Some(Err(_))));
            }
            drop(body);
        }
        Ending::SourceFailed { read } => {
            // The native engine feeds the copy from its own buffer and never drops a
            // failed client's copy unannounced.
            let mut tee = tee;
            for piece in pieces.iter().take(read) {
                tee.push_slice(piece.as_bytes());
            }
            tee.source_failed();
            drop(tee);
        }
    }
    // Taken, not cloned: a clone of a kept body holds nothing against the budget.
    let results = reported
        .0
        .lock()
        .map(|mut results| std::mem::take(&mut *results))
        .unwrap_or_default();
    results
}

#[tokio::test]
async fn every_way_a_copy_ends_is_counted_once_by_who_ended_it() {
    for &(case, pieces, fails, ending, expected) in TABLE {
        let results = run(pieces, fails, ending).await;
        assert_eq!(results.len(), 1, "{case}: reported once: {results:?}");
        let Some(result) = results.into_iter().next() else {
            continue;
        };
        match copy_outcome(result) {
            Ok((body, _)) => {
                assert_eq!(expected, None, "{case}: the copy was kept");
                assert_eq!(body, "abcdefgh", "{case}: the whole body");
            }
            Err(outcome) => assert_eq!(Some(outcome), expected, "{case}"),
        }
    }
}

#[test]
fn only_a_source_failure_is_the_clients() {
    use crate::message::tee::Cutoff;
    // Every other way a copy is lost is counted as something else than the client's abort.
    for (result, expected) in [
        (
            TeeResult::Incomplete(Cutoff::Source),
            MirrorOutcome::DroppedClientAborted,
        ),
        (
            TeeResult::Incomplete(Cutoff::Reader),
            MirrorOutcome::DroppedPrimaryFailed,
        ),
        (TeeResult::TooLarge, MirrorOutcome::DroppedBodyTooLarge),
        (TeeResult::OverBudget, MirrorOutcome::DroppedMemoryBudget),
    ] {
        assert_eq!(
            copy_outcome(result.clone()).err(),
            Some(expected),
            "{result:?}"
        );
    }
}
