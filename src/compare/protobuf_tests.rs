use super::*;
use serde_json::json;

/// tests/protos/echo.proto's descriptor set (its README gives the protoc command).
const ECHO_PB: &[u8] = include_bytes!("../../tests/protos/echo.pb");

fn varint(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn len_field(number: u64, bytes: &[u8], out: &mut Vec<u8>) {
    varint(number << 3 | 2, out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// Item { name: "widget", count: 3, price: 9.5 }
fn item(name: &str, count: u64, price: f64) -> Vec<u8> {
    let mut out = Vec::new();
    len_field(1, name.as_bytes(), &mut out);
    varint(2 << 3, &mut out);
    varint(count, &mut out);
    varint(3 << 3 | 1, &mut out);
    out.extend_from_slice(&price.to_le_bytes());
    out
}

/// EchoReply { text, sequence: 2, item, items: [a, b], server: "" }
fn reply(price: f64) -> Vec<u8> {
    let mut out = Vec::new();
    len_field(1, b"hello", &mut out);
    varint(2 << 3, &mut out);
    varint(2, &mut out);
    len_field(3, &item("widget", 3, price), &mut out);
    len_field(4, &item("a", 1, 1.25), &mut out);
    len_field(4, &item("b", 2, 2.5), &mut out);
    out
}

#[test]
fn without_a_schema_fields_are_named_by_number() {
    assert_eq!(
        decode_wire(&reply(9.5)),
        Some(json!({
            "1": "hello",
            "2": 2,
            "3": {"1": "widget", "2": 3, "3": 9.5},
            "4": [{"1": "a", "2": 1, "3": 1.25}, {"1": "b", "2": 2, "3": 2.5}],
        }))
    );
    assert_eq!(decode_wire(b""), Some(json!({})));
}

#[test]
fn with_a_schema_fields_are_named_by_name_with_their_defaults() {
    let schema = Schema::from_bytes(ECHO_PB).unwrap();
    let descriptor = schema
        .response_type("/shadowtap.test.Echo/Unary?x=1")
        .unwrap();
    assert_eq!(descriptor.full_name(), "shadowtap.test.EchoReply");
    assert_eq!(
        decode_with(&descriptor, &reply(9.5)),
        Some(json!({
            "text": "hello",
            "sequence": 2,
            "item": {"name": "widget", "count": 3, "price": 9.5},
            "items": [
                {"name": "a", "count": 1, "price": 1.25},
                {"name": "b", "count": 2, "price": 2.5},
            ],
            "server": "",
        }))
    );
    assert!(schema.response_type("/shadowtap.test.Echo/Nope").is_none());
    assert!(schema.response_type("/other.Service/Unary").is_none());
    assert!(schema.response_type("not a path").is_none());
    assert_eq!(decode_with(&descriptor, b"\x0a\x05hi"), None);
    assert!(Schema::from_bytes(b"\xff\xff").is_err());
}

#[test]
fn malformed_messages_are_refused() {
    for bad in [
        &b"\x00"[..],                                        // field 0
        b"\x0b",                                             // a group
        b"\x0f",                                             // wire type 7
        b"\x0a\x05ab",                                       // length past the end
        b"\x09\x01\x02",                                     // fixed64 cut short
        b"\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", // varint over ten bytes
        b"\x08",                                             // no value
    ] {
        assert_eq!(decode_wire(bad), None, "{bad:?}");
    }
}

#[test]
fn bytes_that_are_neither_text_nor_a_message_are_hex_and_nesting_is_bounded() {
    let mut out = Vec::new();
    len_field(1, b"\x00\x01\xff", &mut out);
    assert_eq!(decode_wire(&out), Some(json!({"1": "0x0001ff"})));

    let mut nested = b"\x08\x01".to_vec();
    for _ in 0..(MAX_DEPTH + 5) {
        let mut outer = Vec::new();
        len_field(1, &nested, &mut outer);
        nested = outer;
    }
    let value = decode_wire(&nested).unwrap();
    let mut depth = 0;
    let mut at = &value;
    while let Some(inner) = at.get("1") {
        depth += 1;
        at = inner;
    }
    assert!(depth <= MAX_DEPTH + 1, "{depth}");
    assert!(at.as_str().unwrap().starts_with("0x"), "{at}");
}

#[test]
fn the_methods_whose_client_streams_are_named_by_their_paths() {
    let schema = Schema::from_bytes(ECHO_PB).unwrap();
    assert_eq!(
        schema.client_streaming_paths(),
        [
            "/shadowtap.test.Echo/ClientStream",
            "/shadowtap.test.Echo/Bidi"
        ]
    );
}
