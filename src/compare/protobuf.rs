//! Protobuf messages decoded into the value tree the JSON diff walks, so every JSON rule
//! (pointer paths, ignore patterns, noise learning, numeric tolerance, unordered arrays,
//! redaction) applies to gRPC answers unchanged.
//!
//! Two decoders, one output shape (an object per message):
//! - with a route's descriptor set ([`Schema`]), by field name (`/item/price`), through
//!   `prost-reflect`: enums by value name, maps as objects, fields that lack presence shown
//!   with their default so a change from it is `changed`, not `added`;
//! - without one, by field number (`/3/3`) from the wire alone ([`decode_wire`]): varints as
//!   unsigned numbers, fixed-width values as a float when they read as a finite one, and
//!   length-delimited values as text when they are printable UTF-8, else as a nested message
//!   when they parse as one, else as hex (`0x…`). A field number seen more than once becomes
//!   an array of its values.
//!
//! Both are bounded: the wire decoder nests at most [`MAX_DEPTH`] messages (deeper ones are
//! shown as hex) and reads each byte a bounded number of times; prost-reflect has its own
//! recursion limit. Neither panics on any input (the `protobuf` fuzz target, and
//! tests/prop_protobuf.rs).

// Decodes untrusted bytes: no indexing that can panic.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use prost_reflect::{
    DescriptorPool, DynamicMessage, Kind, MapKey, MessageDescriptor, ReflectMessage,
};
use serde_json::{Map, Value};
use std::fmt::Write;

/// Messages nested deeper than this are not decoded by the wire decoder (shown as hex).
pub const MAX_DEPTH: usize = 32;

/// A route's protobuf descriptor set (`protoc --include_imports --descriptor_set_out`, or
/// `buf build -o`): names the fields of each method's messages.
#[derive(Debug, Clone)]
pub struct Schema {
    pool: DescriptorPool,
}

/// Why a descriptor set could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("not a protobuf descriptor set")]
pub struct SchemaError(#[source] prost_reflect::DescriptorError);

impl Schema {
    /// The schema of a descriptor set the config already loaded.
    pub fn new(pool: DescriptorPool) -> Schema {
        Schema { pool }
    }

    /// Loads a serialized `FileDescriptorSet`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Schema, SchemaError> {
        DescriptorPool::decode(bytes)
            .map(|pool| Schema { pool })
            .map_err(SchemaError)
    }

    /// The message type a gRPC call at `path` (`/package.Service/Method`) answers with,
    /// when the set describes that method.
    pub fn response_type(&self, path: &str) -> Option<MessageDescriptor> {
        let path = path.split('?').next()?;
        let (service, method) = path.strip_prefix('/')?.split_once('/')?;
        let service = self.pool.get_service_by_name(service)?;
        let method = service.methods().find(|m| m.name() == method)?;
        Some(method.output())
    }

    /// The paths (`/package.Service/Method`) of the methods whose client sends a stream
    /// (client- and bidi-streaming): a copy of such a call could only reach a shadow as
    /// its whole request stream after the fact, so the mirror does not send one.
    pub fn client_streaming_paths(&self) -> Vec<String> {
        self.pool
            .services()
            .flat_map(|service| {
                service
                    .methods()
                    .filter(|method| method.is_client_streaming())
                    .map(|method| format!("/{}/{}", service.full_name(), method.name()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Number of services described (for a config check's summary).
    pub fn services(&self) -> usize {
        self.pool.services().len()
    }
}

/// A message of `descriptor`'s type as a value tree keyed by field name; `None` when the
/// bytes are not a valid message of that type.
pub fn decode_with(descriptor: &MessageDescriptor, bytes: &[u8]) -> Option<Value> {
    let message = DynamicMessage::decode(descriptor.clone(), bytes).ok()?;
    Some(message_value(&message))
}

fn message_value(message: &DynamicMessage) -> Value {
    let mut map = Map::new();
    for field in message.descriptor().fields() {
        if field.supports_presence() && !message.has_field(&field) {
            continue;
        }
        let value = message.get_field(&field);
        let kind = field.kind();
        let shown = match (&*value, field.is_map()) {
            (prost_reflect::Value::Map(entries), true) => {
                let value_kind = match &kind {
                    Kind::Message(entry) => entry.map_entry_value_field().kind(),
                    other => other.clone(),
                };
                let mut object = Map::new();
                for (key, value) in entries {
                    object.insert(map_key(key), reflect_value(value, &value_kind));
                }
                Value::Object(object)
            }
            (value, _) => reflect_value(value, &kind),
        };
        map.insert(field.name().to_string(), shown);
    }
    Value::Object(map)
}

fn map_key(key: &MapKey) -> String {
    match key {
        MapKey::Bool(b) => b.to_string(),
        MapKey::I32(n) => n.to_string(),
        MapKey::I64(n) => n.to_string(),
        MapKey::U32(n) => n.to_string(),
        MapKey::U64(n) => n.to_string(),
        MapKey::String(s) => s.clone(),
    }
}

fn reflect_value(value: &prost_reflect::Value, kind: &Kind) -> Value {
    use prost_reflect::Value as V;
    match value {
        V::Bool(b) => Value::Bool(*b),
        V::I32(n) => Value::from(*n),
        V::I64(n) => Value::from(*n),
        V::U32(n) => Value::from(*n),
        V::U64(n) => Value::from(*n),
        V::F32(f) => float(f64::from(*f)),
        V::F64(f) => float(*f),
        V::String(s) => Value::String(s.clone()),
        V::Bytes(b) => Value::String(hex(b)),
        V::EnumNumber(number) => match kind {
            Kind::Enum(descriptor) => match descriptor.get_value(*number) {
                Some(named) => Value::String(named.name().to_string()),
                None => Value::from(*number),
            },
            _ => Value::from(*number),
        },
        V::Message(message) => message_value(message),
        V::List(items) => Value::Array(items.iter().map(|v| reflect_value(v, kind)).collect()),
        V::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(key, value)| (map_key(key), reflect_value(value, kind)))
                .collect(),
        ),
    }
}

/// A float as a JSON number; NaN and the infinities (which JSON cannot hold) as text.
fn float(f: f64) -> Value {
    serde_json::Number::from_f64(f).map_or_else(|| Value::String(f.to_string()), Value::Number)
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(2 + bytes.len() * 2);
    out.push_str("0x");
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// A message without its schema, as a value tree keyed by field number; `None` when the
/// bytes are not a well-formed protobuf message (a bad tag or wire type, a length past the
/// end, a varint over ten bytes, a group).
pub fn decode_wire(bytes: &[u8]) -> Option<Value> {
    decode_message(bytes, 0).map(Value::Object)
}

fn decode_message(mut bytes: &[u8], depth: usize) -> Option<Map<String, Value>> {
    let mut map = Map::new();
    while !bytes.is_empty() {
        let key = read_varint(&mut bytes)?;
        let number = key >> 3;
        if number == 0 || number > MAX_FIELD_NUMBER {
            return None;
        }
        let value = match key & 7 {
            0 => Value::from(read_varint(&mut bytes)?),
            1 => {
                let (raw, rest) = bytes.split_first_chunk::<8>()?;
                bytes = rest;
                fixed64(u64::from_le_bytes(*raw))
            }
            2 => {
                let len = usize::try_from(read_varint(&mut bytes)?).ok()?;
                let (inner, rest) = bytes.split_at_checked(len)?;
                bytes = rest;
                length_delimited(inner, depth)
            }
            5 => {
                let (raw, rest) = bytes.split_first_chunk::<4>()?;
                bytes = rest;
                fixed32(u32::from_le_bytes(*raw))
            }
            // 3 and 4 are the deprecated groups; 6 and 7 do not exist.
            _ => return None,
        };
        let name = number.to_string();
        match map.get_mut(&name) {
            Some(Value::Array(values)) => values.push(value),
            Some(first) => {
                let first = first.take();
                map.insert(name, Value::Array(vec![first, value]));
            }
            None => {
                map.insert(name, value);
            }
        }
    }
    Some(map)
}

/// The largest field number protobuf allows (2^29 - 1).
const MAX_FIELD_NUMBER: u64 = (1 << 29) - 1;

fn read_varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..70).step_by(7) {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// A fixed64 as a double when it reads as a plausible one (finite, zero or of an ordinary
/// magnitude), else as the unsigned integer.
fn fixed64(bits: u64) -> Value {
    let f = f64::from_bits(bits);
    let plausible = f == 0.0 || (f.is_finite() && (1e-300..1e300).contains(&f.abs()));
    match plausible {
        true => float(f),
        false => Value::from(bits),
    }
}

/// As [`fixed64`], for a fixed32 read as a float.
fn fixed32(bits: u32) -> Value {
    let f = f32::from_bits(bits);
    let plausible = f == 0.0 || (f.is_finite() && (1e-30..1e30).contains(&f.abs()));
    match plausible {
        true => float(f64::from(f)),
        false => Value::from(bits),
    }
}

fn length_delimited(bytes: &[u8], depth: usize) -> Value {
    if let Ok(text) = std::str::from_utf8(bytes) {
        if !text.chars().any(char::is_control) {
            return Value::String(text.to_string());
        }
    }
    if depth + 1 < MAX_DEPTH && !bytes.is_empty() {
        if let Some(message) = decode_message(bytes, depth + 1) {
            return Value::Object(message);
        }
    }
    Value::String(hex(bytes))
}

#[cfg(test)]
#[path = "protobuf_tests.rs"]
mod tests;
