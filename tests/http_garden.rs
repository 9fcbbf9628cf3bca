#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Public and own request-smuggling corpora, replayed over raw TCP against the real proxy on
//! both HTTP/1.1 engines, with every request mirrored to a shadow.
//!
//! - The HTTP Garden's published trophies (GPL-3.0, so not in this repository) are read from
//!   `../shared/corpora/http-garden/TROPHIES.md` beside the checkout, or from the file
//!   `SHADOWTAP_HTTP_GARDEN` names; when neither is there the test says it skipped them.
//! - The project's own vectors cover every class the Garden names, so the suite stands
//!   without them.
//!
//! The invariant, per payload and for the primary and the shadow alike:
//! - every request an upstream receives is framed one unambiguous way ([`strict_request`]
//!   holds it to the strictest reading of RFC 9112: a bare CR, LF or NUL, a fold, a
//!   doubtful length or coding is a violation);
//! - an upstream receives no more requests than a strict reader finds in the payload before
//!   the first bytes it would refuse. This is the bound that catches smuggling: when the
//!   first request's framing is untrustworthy (`Transfer-Encoding: chunked, chunked`), the
//!   bytes after it are not a request of their own, whatever the proxy answered;
//! - and no more than the client got final non-4xx answers for.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::shadow::*;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long the proxy may stay silent before a payload's exchange is taken as finished.
const IDLE: Duration = Duration::from_millis(200);
/// How long a forwarded request's answer, or a shadow's copy, is waited for.
const LATE: Duration = Duration::from_secs(2);

/// Mirror everything, whatever the method.
const MIRROR_ALL: Policy = Policy {
    global: "",
    route: "",
    shadow: "methods = \"all\"\n",
};

/// One payload: a name for messages, its bytes, and whether it is a well-formed control
/// that must be forwarded in full (so the test cannot pass by forwarding nothing).
struct Vector {
    name: String,
    bytes: Vec<u8>,
    control: bool,
}

fn vector(name: &str, bytes: &[u8]) -> Vector {
    Vector {
        name: name.to_string(),
        bytes: bytes.to_vec(),
        control: false,
    }
}

fn control(name: &str, bytes: &[u8]) -> Vector {
    Vector {
        control: true,
        ..vector(name, bytes)
    }
}

/// Where the trophies are: `SHADOWTAP_HTTP_GARDEN`, else `../shared` beside the checkout.
fn trophies_path() -> std::path::PathBuf {
    match std::env::var_os("SHADOWTAP_HTTP_GARDEN") {
        Some(path) => path.into(),
        None => concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/corpora/http-garden/TROPHIES.md"
        )
        .into(),
    }
}

/// Decodes the escapes the trophies use: `\r`, `\n`, `\t`, `\\`, `\xHH`.
fn unescape(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut bytes = text.bytes().peekable();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match bytes.next() {
            Some(b'r') => out.push(b'\r'),
            Some(b'n') => out.push(b'\n'),
            Some(b't') => out.push(b'\t'),
            Some(b'\\') => out.push(b'\\'),
            Some(b'x') => {
                let hex: Vec<u8> = bytes.by_ref().take(2).collect();
                let value = std::str::from_utf8(&hex)
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match value {
                    Some(value) => out.push(value),
                    None => panic!("bad \\x escape in a trophy payload: {text}"),
                }
            }
            Some(other) => out.extend_from_slice(&[b'\\', other]),
            None => out.push(b'\\'),
        }
    }
    out
}

/// Every HTTP/1 request payload in TROPHIES.md: the backtick-quoted parts of each
/// `Payload:` line, decoded and joined. Prose payloads ("Any request at all"), responses and
/// HTTP/2 prefaces are left out.
fn garden_vectors(markdown: &str) -> Vec<Vector> {
    let mut vectors = Vec::new();
    for (number, line) in markdown.lines().enumerate() {
        let Some(rest) = line.trim_start().strip_prefix("- Payload:") else {
            continue;
        };
        let quoted: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
        if quoted.is_empty() {
            continue;
        }
        let bytes: Vec<u8> = quoted.iter().flat_map(|part| unescape(part)).collect();
        if bytes.starts_with(b"PRI * HTTP/2") || bytes.starts_with(b"HTTP/") {
            continue;
        }
        let name = format!("TROPHIES.md line {}", number + 1);
        // The Garden's servers did not insist on Host; shadowtap refuses a request without
        // one before its framing matters, so such a payload is also sent with a Host.
        let lower = bytes.to_ascii_lowercase();
        let has_host = lower.windows(6).any(|w| w == b"\nhost:");
        if let Some(line_end) = bytes.iter().position(|&b| b == b'\n').filter(|_| !has_host) {
            let mut with_host = bytes[..=line_end].to_vec();
            with_host.extend_from_slice(b"Host: a\r\n");
            with_host.extend_from_slice(&bytes[line_end + 1..]);
            vectors.push(vector(&format!("{name} (Host added)"), &with_host));
        }
        vectors.push(vector(&name, &bytes));
    }
    vectors
}

/// The project's own vectors: one or more for every class of discrepancy the Garden names,
/// written for this suite. Each sits in front of a second request where that is how the
/// class smuggles.
fn own_vectors() -> Vec<Vector> {
    const NEXT: &str = "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";
    let chunked = |size_line: &str, rest: &str| {
        format!("POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n{size_line}{rest}{NEXT}")
    };
    let with_field = |field: &str, body: &str| {
        format!("POST /f HTTP/1.1\r\nHost: a\r\n{field}\r\n\r\n{body}{NEXT}")
    };
    let mut list: Vec<(String, String)> = Vec::new();
    let mut add = |name: &str, payload: String| list.push((name.to_string(), payload));

    // The hole fixed in issue 17: chunked applied twice, in one field or two.
    add(
        "TE chunked, chunked",
        with_field("Transfer-Encoding: chunked, chunked", "0\r\n\r\n"),
    );
    add(
        "TE chunked twice in two fields",
        with_field(
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
            "0\r\n\r\n",
        ),
    );
    // Other Transfer-Encoding shapes.
    for te in [
        ",chunked",
        "chunked,",
        "identity",
        "identity, chunked",
        "gzip, chunked",
        "chunked, gzip",
        "xchunked",
        "chunked;x=1",
        "\"chunked\"",
        "\x0bchunked",
        "chunked\x00",
        "ch unked",
        "\u{a0}chunked",
        "",
    ] {
        add(
            &format!("TE {te:?}"),
            with_field(&format!("Transfer-Encoding: {te}"), "0\r\n\r\n"),
        );
    }
    add(
        "TE in HTTP/1.0",
        format!("POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{NEXT}"),
    );
    add("TE in HTTP/1.0 with CL", format!("POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n{NEXT}"));
    add(
        "CL then TE",
        with_field(
            "Content-Length: 5\r\nTransfer-Encoding: chunked",
            "0\r\n\r\n",
        ),
    );
    add(
        "TE then CL",
        with_field(
            "Transfer-Encoding: chunked\r\nContent-Length: 40",
            "0\r\n\r\n",
        ),
    );
    // Content-Length shapes.
    for cl in [
        "+5",
        "-5",
        "0x5",
        "5_0",
        "1 0",
        "5, 5",
        "5,",
        "",
        "5\x00",
        "\x0b5",
        "٥",
        "99999999999999999999999",
    ] {
        add(
            &format!("CL {cl:?}"),
            with_field(&format!("Content-Length: {cl}"), "hello"),
        );
    }
    add(
        "CL twice, equal",
        with_field("Content-Length: 5\r\nContent-Length: 5", "hello"),
    );
    add(
        "CL twice, different",
        with_field("Content-Length: 0\r\nContent-Length: 5", "hello"),
    );
    add(
        "CL empty then real",
        with_field("Content-Length:\r\nContent-Length: 5", "hello"),
    );
    add(
        "CL with a leading zero",
        with_field("Content-Length: 05", "hello"),
    );
    // Chunk-size lines.
    for size in [
        "0x5",
        "+5",
        "5_0",
        "-0",
        " 5",
        "5 ",
        "\t5",
        "0_0",
        "00000000000000005",
        "10000000000000005",
        "ffffffffffffffff",
    ] {
        add(
            &format!("chunk size {size:?}"),
            chunked(&format!("{size}\r\nhello\r\n0\r\n\r\n"), ""),
        );
    }
    add("chunk size not hex", chunked("Z\r\nZZ\r\n0\r\n\r\n", ""));
    add(
        "chunk size with junk after it",
        chunked("5junk\r\nhello\r\n0\r\n\r\n", ""),
    );
    // Chunk extensions with odd bytes.
    for ext in [";a\rb", ";a\x00", ";a\nb", ";\x01", ";a=\"b\rc\""] {
        add(
            &format!("chunk extension {ext:?}"),
            chunked(&format!("5{ext}\r\nhello\r\n0\r\n\r\n"), ""),
        );
    }
    add(
        "chunk extension with bare CR before the size ends",
        chunked("5\r;a\r\nhello\r\n0\r\n\r\n", ""),
    );
    // Chunk data and line ends.
    add(
        "chunk data overruns its size",
        chunked("5\r\nhelloXX\r\n0\r\n\r\n", ""),
    );
    add(
        "bare LF after chunk data",
        chunked("5\r\nhello\n0\r\n\r\n", ""),
    );
    add(
        "bare LF after chunk size",
        chunked("5\nhello\r\n0\r\n\r\n", ""),
    );
    add(
        "bare CR as chunk line end",
        chunked("5\rhello\r\n0\r\n\r\n", ""),
    );
    add("bare LF ends the last chunk", chunked("0\n\r\n", ""));
    add(
        "a well-formed trailer",
        chunked("5\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n", ""),
    );
    add(
        "trailer with a bare CR",
        chunked("0\r\nX: a\rb\r\n\r\n", ""),
    );
    add(
        "trailer line without a colon",
        chunked("0\r\nGET /t HTTP/1.1\r\n\r\n", ""),
    );
    add("body missing after the last chunk", chunked("0\r\n", ""));
    // Header values with NUL, CR, LF.
    for value in ["a\x00b", "a\rb", "a\nb", "a\r b", "\x00", "a\x7fb"] {
        add(
            &format!("value {value:?}"),
            with_field(&format!("X-Odd: {value}\r\nContent-Length: 5"), "hello"),
        );
    }
    add(
        "NUL after CL value",
        with_field("Content-Length: 5\x00", "hello"),
    );
    // Whitespace before the colon, and odd names.
    for field in [
        "Content-Length : 5",
        "Content-Length\t: 5",
        "Transfer-Encoding : chunked",
        "Host : b\r\nContent-Length: 5",
        "Content-Length\u{85}: 5",
        "\u{ef}oo: x\r\nContent-Length: 5",
        ": x\r\nContent-Length: 5",
        "Content Length: 5",
        "Content-Length 5",
    ] {
        add(&format!("field {field:?}"), with_field(field, "hello"));
    }
    // obs-fold and leading whitespace.
    add(
        "obs-fold in CL",
        with_field("Content-Length: 0\r\n 5", "hello"),
    );
    add(
        "obs-fold in TE",
        with_field("Transfer-Encoding:\r\n chunked", "0\r\n\r\n"),
    );
    add(
        "obs-fold in a plain field",
        with_field("X-Fold: a\r\n\tb\r\nContent-Length: 5", "hello"),
    );
    add(
        "first field starts with SP",
        format!("POST / HTTP/1.1\r\n Content-Length: 5\r\nHost: a\r\n\r\nhello{NEXT}"),
    );
    // Bare LF and bare CR as line ends in the head.
    add(
        "bare LF everywhere",
        format!("POST / HTTP/1.1\nHost: a\nContent-Length: 5\n\nhello{NEXT}"),
    );
    add(
        "bare LF ends one field",
        with_field("X-A: a\nContent-Length: 5", "hello"),
    );
    add(
        "bare LF in a field name",
        with_field("Conte\nnt-Length: 5", "hello"),
    );
    add(
        "bare CR ends the head",
        format!("GET / HTTP/1.1\r\nHost: a\r\n\rZ{NEXT}"),
    );
    add(
        "empty line is LF LF",
        format!("GET / HTTP/1.1\r\nHost: a\r\nX: y\n\n{NEXT}"),
    );
    // Request lines.
    for line in [
        "GET / HTTP/1.32",
        "GET / HTTP/2.0",
        "GET / HTTP/1.1 ",
        "GET  / HTTP/1.1",
        "GET /a b HTTP/1.1",
        "GET /a\x00 HTTP/1.1",
        "G\x00T / HTTP/1.1",
        "GET\t/ HTTP/1.1",
        "GET / http/1.1",
        "GET / HTTP/\r\r1.1",
        "GET /\nHTTP/1.1",
        "G=\":<>(e),[T];?\" / HTTP/1.1",
        "GET / HTTP/01.1",
        "\x00 / HTTP/1.1",
        "GET /\u{85} HTTP/1.1",
    ] {
        add(
            &format!("request line {line:?}"),
            format!("{line}\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello{NEXT}"),
        );
    }
    // Framing fields in a trailer section must never become framing.
    add(
        "Content-Length in a trailer",
        chunked("5\r\nhello\r\n0\r\nContent-Length: 40\r\n\r\n", ""),
    );
    add(
        "Transfer-Encoding in a trailer",
        chunked("5\r\nhello\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n", ""),
    );
    // Tunnels and interim answers: what follows must still be read as requests, or not at all.
    add("h2c upgrade then the preface", format!("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\nPRI * HTTP/2.0\r\n\r\nSM\r\n\r\n{NEXT}"));
    add("websocket upgrade", format!("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n{NEXT}"));
    add(
        "CONNECT",
        format!("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n{NEXT}"),
    );
    add(
        "Expect 100-continue",
        with_field("Expect: 100-continue\r\nContent-Length: 5", "hello"),
    );
    add(
        "OPTIONS *",
        format!("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n{NEXT}"),
    );
    add(
        "absolute form, other Host",
        format!("GET http://b/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello{NEXT}"),
    );
    add(
        "GET with a body",
        format!("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello{NEXT}"),
    );
    add(
        "HEAD with a body",
        format!("HEAD / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello{NEXT}"),
    );
    // Host with odd bytes.
    add(
        "Host with NUL",
        format!("GET / HTTP/1.1\r\nHost: a\x00.b\r\n\r\n{NEXT}"),
    );
    // Trailing bytes after a complete request.
    add("NUL after the last chunk", chunked("0\r\n\r\n\x00", ""));
    add(
        "junk after a complete request",
        format!("GET / HTTP/1.1\r\nHost: a\r\n\r\nINVALID\r\n\r\n{NEXT}"),
    );

    let mut vectors: Vec<Vector> = list
        .into_iter()
        .map(|(name, payload)| vector(&name, &latin1(&payload)))
        .collect();
    // Controls: the same raw client, well-formed framing, fully forwarded.
    vectors.push(control(
        "control: GET",
        b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\n",
    ));
    vectors.push(control("control: CL POST then GET", b"POST /ok HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET /ok2 HTTP/1.1\r\nHost: a\r\n\r\n"));
    vectors.push(control("control: chunked POST, the coding in capitals", b"POST /ok HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"));
    vectors.push(control("control: chunked POST", b"POST /ok HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"));
    // The mirror once lost this copy (counted `dropped_client_aborted`): the copy must carry
    // the body and the trailer.
    vectors.push(control("control: chunked POST with a trailer", b"POST /ok HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n"));
    vectors.push(control("control: chunked POST with extension", b"POST /ok HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;name=value\r\nhello\r\n0\r\n\r\n"));
    vectors.push(control(
        "control: HTTP/1.0 with CL",
        b"POST /ok HTTP/1.0\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    ));
    vectors
}

/// The payload's bytes, with U+0080..U+00FF written as the one byte they name (so `\u{a0}`
/// in a vector is the raw byte 0xA0 the Garden's classes are about).
fn latin1(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for c in text.chars() {
        match u8::try_from(u32::from(c)) {
            Ok(byte) => out.push(byte),
            Err(_) => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    out
}

/// How many requests a strict reader takes from `payload` before bytes it refuses (or
/// that do not finish a request).
fn strict_count(payload: &[u8]) -> usize {
    let mut rest = payload;
    let mut count = 0;
    while let Strict::Complete { len, .. } = client_request(rest) {
        count += 1;
        rest = rest.get(len..).unwrap_or_default();
    }
    count
}

/// Writes `bytes` on a new connection and reads until the proxy closes it, or stays silent
/// for [`IDLE`] while every request `forwarded()` counts has had an answer (a slow machine
/// must not make a late answer look like a smuggled request). An unanswered forwarded
/// request is waited for up to [`LATE`].
async fn exchange(addr: SocketAddr, bytes: &[u8], forwarded: impl Fn() -> usize) -> String {
    let mut stream = within("raw connect", TcpStream::connect(addr))
        .await
        .expect("connect");
    // A proxy may refuse and close before reading everything: a failed write is an answer.
    let _ = stream.write_all(bytes).await;
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    let started = Instant::now();
    loop {
        match tokio::time::timeout(IDLE, stream.read(&mut chunk)).await {
            Ok(Ok(read)) if read > 0 => out.extend_from_slice(&chunk[..read]),
            Ok(_) => break,
            Err(_idle) => {
                let answered = statuses(&String::from_utf8_lossy(&out)).len();
                if answered >= forwarded() || started.elapsed() > LATE {
                    break;
                }
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The status codes of the responses in a raw answer.
fn statuses(answer: &str) -> Vec<u16> {
    answer
        .match_indices("HTTP/1.")
        .filter_map(|(at, _)| answer.get(at + 9..at + 12))
        .filter_map(|code| code.parse().ok())
        .collect()
}

/// Replays `vectors` through one proxy on `engine` (primary and shadow both strict raw
/// upstreams); returns one line per broken invariant.
async fn replay(engine: &str, vectors: &[Vector]) -> Vec<String> {
    let primary = framing_upstream().await;
    let shadow = framing_upstream().await;
    let toml = engine_toml(&mirror_toml(primary.addr, shadow.addr, &MIRROR_ALL), engine);
    assert!(toml.contains("http1_engine"), "engine not set in:\n{toml}");
    let proxy = Shadowtap::start(config(&toml)).await;
    let mut failures = Vec::new();
    let mut reached = 0;
    for vector in vectors {
        let before = (primary.log().requests.len(), shadow.log().requests.len());
        let answer = exchange(proxy.addr, &vector.bytes, || {
            primary.log().requests.len() - before.0
        })
        .await;
        let forwarded = primary.log().requests.len() - before.0;
        // The shadow's copy is sent after the primary's answer: give it a moment.
        let settle = Instant::now() + LATE;
        while shadow.log().requests.len() - before.1 < forwarded && Instant::now() < settle {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (primary_log, shadow_log) = (primary.log(), shadow.log());
        let counts = [
            ("primary", primary_log.requests.len() - before.0),
            ("shadow", shadow_log.requests.len() - before.1),
        ];
        reached += usize::from(counts[0].1 > 0);
        let allowed = strict_count(&vector.bytes);
        if counts[1].1 < counts[0].1 {
            // Not an invariant here (a shadow copy may be dropped, and is counted); shown so a
            // lost copy can be looked into.
            eprintln!(
                "{engine}: {}: the shadow got {} of {}",
                vector.name, counts[1].1, counts[0].1
            );
        }
        let answered = statuses(&answer)
            .iter()
            .filter(|code| !(100..200).contains(*code) && !(400..500).contains(*code))
            .count();
        let mut broken = Vec::new();
        for (side, got) in counts {
            if got > allowed {
                broken.push(format!(
                    "{side} received {got} requests, a strict reader finds {allowed}"
                ));
            }
            if got > answered {
                broken.push(format!(
                    "{side} received {got} requests, the client got {answered} non-4xx answers"
                ));
            }
            if vector.control && got != allowed {
                broken.push(format!("control: {side} received {got} of {allowed}"));
            }
        }
        for (side, log) in [("primary", &primary_log), ("shadow", &shadow_log)] {
            for violation in &log.violations {
                broken.push(format!("{side} got malformed framing: {violation}"));
            }
        }
        if !broken.is_empty() {
            let sent = String::from_utf8_lossy(&vector.bytes);
            let seen = |log: &FramingLog| log.requests.len();
            let metrics = proxy.metrics().await;
            let mirror: Vec<&str> = metrics
                .lines()
                .filter(|l| l.starts_with("shadowtap_mirror_requests_total"))
                .collect();
            failures.push(format!(
                "{engine}: {}: {}\n  mirror outcomes so far: {mirror:?}\n  sent: {sent:?}\n  answer: {answer:?}\n  primary heads: {:?}\n  shadow heads: {:?}",
                vector.name,
                broken.join("; "),
                primary_log.requests.get(before.0..seen(&primary_log)).unwrap_or_default(),
                shadow_log.requests.get(before.1..seen(&shadow_log)).unwrap_or_default(),
            ));
            // A violation ends that upstream connection; start the next payload clean.
            if !primary_log.violations.is_empty() || !shadow_log.violations.is_empty() {
                break;
            }
        }
    }
    eprintln!(
        "{engine}: {} payloads, {reached} reached the primary, the others were refused",
        vectors.len()
    );
    failures
}

fn report(failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} payloads broke the invariant:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

async fn garden(engine: &str) {
    let path = trophies_path();
    let Ok(markdown) = std::fs::read_to_string(&path) else {
        eprintln!(
            "skipped: the HTTP Garden's trophies are not at {} (set SHADOWTAP_HTTP_GARDEN to replay them)",
            path.display()
        );
        return;
    };
    let vectors = garden_vectors(&markdown);
    assert!(
        vectors.len() >= 50,
        "only {} payloads found in {}: has the format changed?",
        vectors.len(),
        path.display()
    );
    eprintln!("{engine}: replaying {} HTTP Garden payloads", vectors.len());
    report(replay(engine, &vectors).await);
}

#[tokio::test]
async fn http_garden_trophies_native() {
    garden("native").await;
}

#[tokio::test]
async fn http_garden_trophies_hyper() {
    garden("hyper").await;
}

#[tokio::test]
async fn own_smuggling_vectors_native() {
    report(replay("native", &own_vectors()).await);
}

#[tokio::test]
async fn own_smuggling_vectors_hyper() {
    report(replay("hyper", &own_vectors()).await);
}

/// The bound that catches smuggling, checked on the shape of the hole issue 17 fixed: a
/// proxy that took `chunked, chunked` as chunked answered two requests and forwarded both,
/// which the non-4xx count allows and the strict count does not.
#[test]
fn the_strict_count_refuses_what_follows_untrustworthy_framing() {
    let doubled = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_eq!(strict_count(doubled), 0);
    let once = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_eq!(strict_count(once), 2);
    assert_eq!(
        statuses("HTTP/1.1 200 OK\r\n\r\nHTTP/1.1 400 Bad\r\n\r\n"),
        [200, 400]
    );
}

#[test]
fn trophy_payloads_are_decoded() {
    let markdown = "- Payload: `GET / HTTP/1.1\\r\\nHost: a\\r\\nX: \\x00\\xff\\t` `Z`\n  - Payload: `HTTP/1.1 200 OK\\r\\n\\r\\n`\n  - Payload: `PRI * HTTP/2.0\\r\\n`\n  - Payload: Any request at all.\n";
    let vectors = garden_vectors(markdown);
    assert_eq!(vectors.len(), 1);
    assert_eq!(
        vectors[0].bytes,
        b"GET / HTTP/1.1\r\nHost: a\r\nX: \x00\xff\tZ"
    );
    let without_host = garden_vectors("- Payload: `GET / HTTP/1.1\\r\\n\\r\\n`");
    let sent: Vec<&[u8]> = without_host.iter().map(|v| v.bytes.as_slice()).collect();
    assert_eq!(
        sent,
        [
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n".as_slice(),
            b"GET / HTTP/1.1\r\n\r\n"
        ]
    );
}

/// The upstreams' reader refuses every shape the invariant names, and takes the plain ones:
/// otherwise a proxy that forwarded malformed framing would pass unseen.
#[test]
fn the_strict_reader_refuses_what_an_upstream_must_never_get() {
    let refused: &[&[u8]] = &[
        b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nZ",
        b"POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\nZ",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0x1\r\nZ\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1;a\rb\r\nZ\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nContent-Length: 5\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",
        b"GET / HTTP/1.1\nX: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nX : a\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
        b"GET /a b HTTP/1.1\r\n\r\n",
    ];
    for bytes in refused {
        assert!(
            matches!(strict_request(bytes), Strict::Invalid(_)),
            "taken: {:?}",
            String::from_utf8_lossy(bytes)
        );
    }
    let taken: &[&[u8]] = &[
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 1\r\n\r\nZ",
        b"POST / HTTP/1.1\r\ntransfer-encoding: Chunked\r\n\r\n1;a=b\r\nZ\r\n0\r\nX: t\r\n\r\n",
    ];
    for bytes in taken {
        assert!(
            matches!(strict_request(bytes), Strict::Complete { len, .. } if len == bytes.len()),
            "refused: {:?}",
            String::from_utf8_lossy(bytes)
        );
    }
    // What a recipient may read more kindly in a client's request, and no more.
    assert_eq!(
        strict_count(b"GET / HTTP/1.1\nHost: a\n\nGET / HTTP/1.1\r\n\r\n"),
        2
    );
    assert_eq!(
        strict_count(
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nContent-Length: 5\r\n\r\n"
        ),
        1
    );
    assert_eq!(strict_count(b"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n"), 0);
}
