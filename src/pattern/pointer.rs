//! The JSON Pointer pattern grammar (RFC 6901, with `*` for any one segment): `/items/*/id`.
//!
//! `compare::json` matches the segments against the paths of a JSON walk; config validation
//! reports the errors.

/// Parses `/a/*/b` into its segments, `~1` and `~0` unescaped to `/` and `~`; `""` is the
/// whole document (no segments).
pub fn parse(text: &str) -> Result<Vec<String>, String> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = text.strip_prefix('/') else {
        return Err("a JSON Pointer starts with '/'".into());
    };
    Ok(rest
        .split('/')
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_unescaped_and_the_empty_pointer_is_the_document() {
        assert_eq!(parse(""), Ok(Vec::new()));
        assert_eq!(
            parse("/a~1b/~0c/*/~01"),
            Ok(vec!["a/b".into(), "~c".into(), "*".into(), "~1".into()])
        );
        assert!(parse("nope").is_err());
    }
}
