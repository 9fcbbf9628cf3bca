#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The recording format: JSON Lines of HAR 1.2 entries written and read back unchanged, a
//! browser's `.har` read as a recording, and bad lines skipped with their line numbers.

use proptest::prelude::*;
use shadowtap::record::har::{self, Content, Entry, Header, PostData, Request, Response, Timings};
use shadowtap::record::{read_files, Loaded};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn entry(method: &str, path: &str, body: &[u8], status: u16, answer: &[u8], millis: u64) -> Entry {
    let started = UNIX_EPOCH + Duration::from_millis(1_700_000_000_000 + millis);
    let (text, encoding) = har::encode_body(body);
    let (answer_text, answer_encoding) = har::encode_body(answer);
    Entry {
        started_date_time: har::format_time(started),
        time: millis as f64,
        request: Request {
            method: method.to_string(),
            url: format!("http://example.test{path}"),
            http_version: "HTTP/1.1".into(),
            cookies: Vec::new(),
            headers: vec![Header {
                name: "accept".into(),
                value: "application/json".into(),
            }],
            query_string: Vec::new(),
            post_data: (!body.is_empty()).then(|| PostData {
                mime_type: "application/octet-stream".into(),
                text,
                encoding,
            }),
            headers_size: -1,
            body_size: body.len() as i64,
        },
        response: Response {
            status,
            status_text: String::new(),
            http_version: "HTTP/1.1".into(),
            cookies: Vec::new(),
            headers: vec![Header {
                name: "content-type".into(),
                value: "application/json".into(),
            }],
            content: Content {
                size: answer.len() as i64,
                mime_type: "application/json".into(),
                text: Some(answer_text),
                encoding: answer_encoding,
            },
            redirect_url: String::new(),
            headers_size: -1,
            body_size: answer.len() as i64,
        },
        cache: Default::default(),
        timings: Timings {
            send: 0.0,
            wait: millis as f64,
            receive: 0.0,
        },
        shadowtap: None,
    }
}

fn lines(entries: &[Entry]) -> String {
    entries
        .iter()
        .map(|entry| serde_json::to_string(entry).unwrap() + "\n")
        .collect()
}

proptest! {
    #[test]
    fn written_entries_read_back_unchanged(
        specs in proptest::collection::vec(
            (
                prop::sample::select(vec!["GET", "HEAD", "POST", "PUT"]),
                "/[a-z0-9/]{0,20}(\\?[a-z]=[0-9]{1,3})?",
                proptest::collection::vec(any::<u8>(), 0..64),
                100u16..600,
                proptest::collection::vec(any::<u8>(), 0..64),
                0u64..100_000,
            ),
            0..8,
        )
    ) {
        let entries: Vec<Entry> = specs
            .iter()
            .map(|(method, path, body, status, answer, millis)| {
                entry(method, path, body, *status, answer, *millis)
            })
            .collect();
        let mut loaded = Loaded::default();
        loaded.read_text("generated", &lines(&entries));
        prop_assert!(loaded.skipped.is_empty(), "{:?}", loaded.skipped);
        prop_assert_eq!(&loaded.entries, &entries);
        for ((_, path, body, _, answer, millis), read) in specs.iter().zip(&loaded.entries) {
            prop_assert_eq!(&read.request_body(), body);
            prop_assert_eq!(&read.response_body(), answer);
            prop_assert_eq!(read.path_and_query(), path.clone());
            let started = UNIX_EPOCH + Duration::from_millis(1_700_000_000_000 + millis);
            prop_assert_eq!(read.started(), Some(started));
        }
    }
}

#[test]
fn corrupt_and_truncated_lines_are_skipped_with_their_line_numbers() {
    let entries: Vec<Entry> = (0..4)
        .map(|i| entry("GET", &format!("/items/{i}"), b"", 200, b"{}", i))
        .collect();
    let whole = lines(&entries);
    let mut text: Vec<String> = whole.lines().map(str::to_string).collect();
    // Line 2 cut in half (a crash mid-write), line 4 not JSON at all, a blank line ignored.
    let cut = text[1].len() / 2;
    text[1].truncate(cut);
    text.insert(3, "not json".into());
    text.insert(4, String::new());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("traffic.jsonl");
    std::fs::write(&path, text.join("\n") + "\n").unwrap();
    let loaded = read_files(&[&path]).unwrap();
    let paths: Vec<String> = loaded.entries.iter().map(Entry::path).collect();
    assert_eq!(paths, ["/items/0", "/items/2", "/items/3"]);
    let lines: Vec<usize> = loaded.skipped.iter().map(|s| s.line).collect();
    assert_eq!(lines, [2, 4]);
    assert!(loaded.skipped[0].file.ends_with("traffic.jsonl"));
}

#[test]
fn a_browser_har_reads_as_a_recording() {
    // The shape Chromium's devtools export: a `log` with creator, pages and entries carrying
    // fields of their own, times with an offset, one entry broken.
    let text = r#"{"log": {"version": "1.2", "creator": {"name": "WebInspector", "version": "537.36"},
      "pages": [{"startedDateTime": "2026-12-07T05:00:00.000+01:00", "id": "page_1", "title": "t", "pageTimings": {}}],
      "entries": [
        {"_initiator": {"type": "other"}, "_priority": "VeryHigh", "_resourceType": "document", "cache": {},
         "connection": "1234", "pageref": "page_1",
         "request": {"method": "GET", "url": "http://127.0.0.1:8080/api/items?page=2#top", "httpVersion": "HTTP/1.1",
           "headers": [{"name": "Accept", "value": "*/*"}], "queryString": [{"name": "page", "value": "2"}],
           "cookies": [], "headersSize": 120, "bodySize": 0},
         "response": {"status": 200, "statusText": "OK", "httpVersion": "HTTP/1.1",
           "headers": [{"name": "Content-Type", "value": "application/json"}], "cookies": [],
           "content": {"size": 9, "mimeType": "application/json", "text": "eyJhIjogMX0=", "encoding": "base64"},
           "redirectURL": "", "headersSize": 80, "bodySize": 9, "_transferSize": 89, "_error": null},
         "serverIPAddress": "127.0.0.1", "startedDateTime": "2026-12-07T05:00:00.250+01:00", "time": 3.2,
         "timings": {"blocked": 0.5, "dns": -1, "ssl": -1, "connect": -1, "send": 0.1, "wait": 2.0, "receive": 0.6, "_blocked_queueing": 0.3}},
        {"request": {"method": "GET"}, "response": {"status": 200}}
      ]}}"#;
    let mut loaded = Loaded::default();
    loaded.read_text("devtools.har", text);
    assert_eq!(loaded.entries.len(), 1);
    let entry = &loaded.entries[0];
    assert_eq!(entry.path_and_query(), "/api/items?page=2");
    assert_eq!(entry.response_body(), br#"{"a": 1}"#);
    assert_eq!(
        entry.started(),
        // 05:00:00.250+01:00 is 04:00:00.250 UTC.
        Some(UNIX_EPOCH + Duration::from_millis(1_796_616_000_250)),
    );
    assert_eq!(loaded.skipped.len(), 1);
    assert_eq!(loaded.skipped[0].line, 2);
}

#[test]
fn times_are_written_in_utc_and_read_with_any_offset() {
    let time = UNIX_EPOCH + Duration::from_millis(1_796_616_000_123);
    let text = har::format_time(time);
    assert!(text.ends_with('Z'), "{text}");
    assert_eq!(har::parse_time(&text), Some(time));
    let later: SystemTime = har::parse_time("2026-12-07T00:00:00.123-02:00").unwrap();
    assert_eq!(har::parse_time("2026-12-07T02:00:00.123Z"), Some(later));
}
