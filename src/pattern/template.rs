//! Path templates: `/users/{id}/orders/*`, the `route` label of the paths they match.
//!
//! A template is `/`-separated segments: a literal, `{name}` for exactly one non-empty
//! segment, or a final `*` for the rest of the path (possibly empty). Config validation
//! parses each template once, reporting the errors; the router matches request paths
//! against the result.

// Templates are matched on the data path: no indexing that can panic (see docs/ARCHITECTURE.md).
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use serde::{Serialize, Serializer};

/// One template segment.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// This exact text.
    Literal(String),
    /// `{name}`: exactly one non-empty segment.
    Param,
    /// A final `*`: the rest of the path, possibly empty.
    Rest,
}

/// A parsed path template; printed as the text it was parsed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    text: String,
    segments: Vec<Segment>,
}

impl PathTemplate {
    /// Parses a template, or says why it is not one.
    pub fn parse(text: &str) -> Result<PathTemplate, String> {
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
        Ok(PathTemplate {
            text: text.to_string(),
            segments,
        })
    }

    /// The template as written: its metric label.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `path` (without query) fits the template.
    pub fn matches(&self, path: &str) -> bool {
        let rest = path.strip_prefix('/').unwrap_or(path);
        // "/" has no segments; split("") would yield one empty one.
        let mut parts = (!rest.is_empty())
            .then(|| rest.split('/'))
            .into_iter()
            .flatten();
        for segment in &self.segments {
            match segment {
                Segment::Rest => return true,
                Segment::Literal(literal) => match parts.next() {
                    Some(part) if part == literal => {}
                    _ => return false,
                },
                Segment::Param => match parts.next() {
                    Some(part) if !part.is_empty() => {}
                    _ => return false,
                },
            }
        }
        parts.next().is_none()
    }
}

impl Serialize for PathTemplate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn template_syntax() {
        assert!(PathTemplate::parse("/users/{id}").is_ok());
        assert!(PathTemplate::parse("/").is_ok());
        assert!(PathTemplate::parse("/static/*").is_ok());
        assert!(PathTemplate::parse("users").is_err());
        assert!(PathTemplate::parse("/a/*/b").is_err());
        assert!(PathTemplate::parse("/a/x{id}").is_err());
        let root = PathTemplate::parse("/").unwrap();
        assert!(root.matches("/"));
        assert!(!root.matches("/a"));
    }
}
