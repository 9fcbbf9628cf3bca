//! The path template grammar: `/users/{id}/orders/*`.
//!
//! A template is `/`-separated segments: a literal, `{name}` for exactly one non-empty
//! segment, or a final `*` for the rest of the path (possibly empty). The router matches
//! paths against the segments; config validation reports the errors.

// Templates are matched on the data path: no indexing that can panic (see docs/ARCHITECTURE.md).
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

/// One template segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// This exact text.
    Literal(String),
    /// `{name}`: exactly one non-empty segment.
    Param,
    /// A final `*`: the rest of the path, possibly empty.
    Rest,
}

/// Parses a template into its segments, or says why it is not one.
pub fn parse(text: &str) -> Result<Vec<Segment>, String> {
    let Some(rest) = text.strip_prefix('/') else {
        return Err("a template must start with '/'".into());
    };
    let parts: Vec<&str> = if rest.is_empty() {
        Vec::new()
    } else {
        rest.split('/').collect()
    };
    let last = parts.len().saturating_sub(1);
    let mut segments = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        let segment = if *part == "*" {
            if i != last {
                return Err("'*' may only be the last segment".into());
            }
            Segment::Rest
        } else if part.starts_with('{') && part.ends_with('}') && part.len() > 2 {
            Segment::Param
        } else if part.contains(['{', '}', '*']) {
            return Err(format!(
                "segment {part:?}: use {{name}} for a whole segment or a final *"
            ));
        } else {
            Segment::Literal((*part).to_string())
        };
        segments.push(segment);
    }
    Ok(segments)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_syntax() {
        assert!(parse("/users/{id}").is_ok());
        assert!(parse("/").is_ok());
        assert!(parse("/static/*").is_ok());
        assert!(parse("users").is_err());
        assert!(parse("/a/*/b").is_err());
        assert!(parse("/a/x{id}").is_err());
    }
}
