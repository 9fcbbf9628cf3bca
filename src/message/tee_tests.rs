use super::*;
use http_body_util::BodyExt;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<TeeResult>>>, Option<Arc<Budget>>);

impl TeeSink for Recorder {
    fn finish(self, result: TeeResult) {
        self.0.lock().unwrap().push(result);
    }

    fn budget(&self) -> Option<&Arc<Budget>> {
        self.1.as_ref()
    }
}

/// A body that yields the given chunks (or errors) one per poll.
struct Chunks(std::collections::VecDeque<Result<&'static str, std::io::Error>>);

impl Body for Chunks {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let next = self.get_mut().0.pop_front();
        Poll::Ready(
            next.map(|chunk| chunk.map(|text| Frame::data(Bytes::from_static(text.as_bytes())))),
        )
    }
}

fn stream(chunks: Vec<Result<&'static str, std::io::Error>>) -> Chunks {
    Chunks(chunks.into())
}

#[tokio::test]
async fn passes_every_byte_and_keeps_a_copy() {
    let recorder = Recorder::default();
    let body = TeeBody::new(
        stream(vec![Ok("hello "), Ok("world")]),
        Some(Tee::new(64, recorder.clone())),
    );
    let out = body.collect().await.unwrap().to_bytes();
    assert_eq!(out, "hello world");
    assert_eq!(
        *recorder.0.lock().unwrap(),
        vec![TeeResult::Complete(
            Bytes::from("hello world"),
            Held::nothing()
        )]
    );
}

#[tokio::test]
async fn past_the_cap_the_copy_is_dropped_but_the_stream_goes_on() {
    let recorder = Recorder::default();
    let body = TeeBody::new(
        stream(vec![Ok("12345"), Ok("67890"), Ok("x")]),
        Some(Tee::new(8, recorder.clone())),
    );
    let out = body.collect().await.unwrap().to_bytes();
    assert_eq!(out, "1234567890x");
    assert_eq!(*recorder.0.lock().unwrap(), vec![TeeResult::TooLarge]);
}

#[tokio::test]
async fn an_error_or_early_drop_is_incomplete_exactly_once() {
    let recorder = Recorder::default();
    let body = TeeBody::new(
        stream(vec![Ok("abc"), Err(std::io::Error::other("reset"))]),
        Some(Tee::new(64, recorder.clone())),
    );
    assert!(body.collect().await.is_err());
    let recorder2 = Recorder::default();
    let body = TeeBody::new(
        stream(vec![Ok("abc"), Ok("def")]),
        Some(Tee::new(64, recorder2.clone())),
    );
    drop(body);
    assert_eq!(
        *recorder.0.lock().unwrap(),
        vec![TeeResult::Incomplete(Cutoff::Source)],
        "an error is the source's"
    );
    assert_eq!(
        *recorder2.0.lock().unwrap(),
        vec![TeeResult::Incomplete(Cutoff::Reader)],
        "a drop before the end is the reader's"
    );
}

/// Records the trailers it is shown, and its one result.
#[derive(Clone, Default)]
struct TrailerRecorder(Arc<Mutex<(Option<HeaderMap>, Vec<TeeResult>)>>);

impl TeeSink for TrailerRecorder {
    fn finish(self, result: TeeResult) {
        self.0.lock().unwrap().1.push(result);
    }

    fn trailers(&mut self, trailers: &HeaderMap) {
        self.0.lock().unwrap().0 = Some(trailers.clone());
    }
}

/// Data, then trailers; never says it is at its end (as hyper's incoming body does not).
struct WithTrailers(std::collections::VecDeque<Frame<Bytes>>);

impl Body for WithTrailers {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        Poll::Ready(self.get_mut().0.pop_front().map(Ok))
    }
}

#[tokio::test]
async fn a_trailers_frame_completes_the_copy_even_if_nothing_polls_past_it() {
    let mut trailers = HeaderMap::new();
    trailers.insert("x-checksum", "abc".parse().unwrap());
    let recorder = TrailerRecorder::default();
    let mut body = TeeBody::new(
        WithTrailers(
            [
                Frame::data(Bytes::from_static(b"data")),
                Frame::trailers(trailers.clone()),
            ]
            .into(),
        ),
        Some(Tee::new(64, recorder.clone())),
    );
    assert!(body.frame().await.unwrap().unwrap().is_data());
    assert!(body.frame().await.unwrap().unwrap().is_trailers());
    // The consumer stops here (a trailers frame is the last), and drops the body.
    drop(body);
    let seen = recorder.0.lock().unwrap();
    assert_eq!(seen.0.as_ref(), Some(&trailers));
    assert_eq!(
        seen.1,
        vec![TeeResult::Complete(Bytes::from("data"), Held::nothing())]
    );
}

#[tokio::test]
async fn an_empty_body_completes_without_a_poll() {
    let recorder = Recorder::default();
    let _body = TeeBody::new(
        http_body_util::Empty::<Bytes>::new(),
        Some(Tee::new(64, recorder.clone())),
    );
    assert_eq!(
        *recorder.0.lock().unwrap(),
        vec![TeeResult::Complete(Bytes::new(), Held::nothing())]
    );
}

#[tokio::test]
async fn a_charged_copy_holds_what_it_keeps_and_is_dropped_once_it_stops_fitting() {
    let budget = Budget::new(8, metrics::Gauge::noop());
    let recorder = Recorder(Arc::default(), Some(budget.clone()));
    let body = TeeBody::new(
        stream(vec![Ok("1234"), Ok("5678")]),
        Some(Tee::new(64, recorder.clone())),
    );
    assert_eq!(body.collect().await.unwrap().to_bytes(), "12345678");
    match recorder.0.lock().unwrap().as_slice() {
        [TeeResult::Complete(body, held)] => {
            assert_eq!((body.as_ref(), held.bytes()), (&b"12345678"[..], 8));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(budget.used(), 8, "held while the result lives");
    recorder.0.lock().unwrap().clear();
    assert_eq!(budget.used(), 0);

    // 5 bytes fit, 5 + 4 do not: dropped then, its 5 bytes given back, the stream on.
    let recorder = Recorder(Arc::default(), Some(budget.clone()));
    let mut body = TeeBody::new(
        stream(vec![Ok("12345"), Ok("6789"), Ok("x")]),
        Some(Tee::new(64, recorder.clone())),
    );
    let first = body.frame().await.unwrap().unwrap();
    assert_eq!(first.data_ref().map(Bytes::as_ref), Some(&b"12345"[..]));
    assert_eq!(budget.used(), 5, "a capture in progress holds what it has");
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(rest, "6789x");
    assert_eq!(*recorder.0.lock().unwrap(), vec![TeeResult::OverBudget]);
    assert_eq!(budget.used(), 0);
}

/// A recorder that asks for a digest past the cap or the budget.
struct Digesting(Recorder);

impl TeeSink for Digesting {
    fn finish(self, result: TeeResult) {
        self.0.finish(result);
    }

    fn budget(&self) -> Option<&Arc<Budget>> {
        self.0.budget()
    }

    fn digests(&self) -> bool {
        true
    }
}

#[tokio::test]
async fn past_the_cap_or_the_budget_a_digesting_sink_gets_the_whole_bodys_digest() {
    let whole = BodyDigest::of(b"1234567890x");
    // Past the cap, through frames and through slices.
    let recorder = Recorder::default();
    let body = TeeBody::new(
        stream(vec![Ok("12345"), Ok("67890"), Ok("x")]),
        Some(Tee::new(8, Digesting(recorder.clone()))),
    );
    assert_eq!(body.collect().await.unwrap().to_bytes(), "1234567890x");
    let mut sliced = Tee::new(8, Digesting(recorder.clone()));
    for piece in [&b"12345"[..], b"67890", b"x"] {
        sliced.push_slice(piece);
    }
    sliced.complete();
    let digested = TeeResult::Digested {
        digest: whole,
        over_budget: false,
    };
    assert_eq!(
        *recorder.0.lock().unwrap(),
        vec![digested.clone(), digested]
    );

    // Past the budget: what was held is given back at once, the digest goes on.
    let budget = Budget::new(6, metrics::Gauge::noop());
    let recorder = Recorder(Arc::default(), Some(budget.clone()));
    let mut body = TeeBody::new(
        stream(vec![Ok("12345"), Ok("67890"), Ok("x")]),
        Some(Tee::new(64, Digesting(recorder.clone()))),
    );
    body.frame().await.unwrap().unwrap();
    assert_eq!(budget.used(), 5);
    body.frame().await.unwrap().unwrap();
    assert_eq!(budget.used(), 0, "a digest holds no bytes");
    assert_eq!(body.collect().await.unwrap().to_bytes(), "x");
    assert_eq!(
        *recorder.0.lock().unwrap(),
        vec![TeeResult::Digested {
            digest: whole,
            over_budget: true
        }]
    );

    // Dropped before its end: incomplete, not a digest of a part.
    let recorder = Recorder::default();
    let mut body = TeeBody::new(
        stream(vec![Ok("12345"), Ok("67890"), Ok("x")]),
        Some(Tee::new(4, Digesting(recorder.clone()))),
    );
    body.frame().await.unwrap().unwrap();
    drop(body);
    assert_eq!(
        *recorder.0.lock().unwrap(),
        vec![TeeResult::Incomplete(Cutoff::Reader)]
    );
}
