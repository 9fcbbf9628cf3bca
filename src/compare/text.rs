//! Line diff of text bodies with `similar`, keeping a short unified-diff excerpt for people.

use similar::TextDiff;

/// Longest excerpt kept, in bytes (a sample must stay small).
const MAX_EXCERPT: usize = 4096;

/// A text difference: line counts and a unified-diff excerpt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextChange {
    /// Lines only in the primary.
    pub removed_lines: usize,
    /// Lines only in the shadow.
    pub added_lines: usize,
    /// `--- primary` / `+++ shadow` unified diff, cut at 4 KiB.
    pub excerpt: String,
}

/// Compares two texts line by line; `None` when equal.
pub fn diff(primary: &str, shadow: &str) -> Option<TextChange> {
    if primary == shadow {
        return None;
    }
    let diff = TextDiff::from_lines(primary, shadow);
    let (mut added_lines, mut removed_lines) = (0, 0);
    for change in diff.iter_all_changes() {
        match change.tag() {
            similar::ChangeTag::Insert => added_lines += 1,
            similar::ChangeTag::Delete => removed_lines += 1,
            similar::ChangeTag::Equal => {}
        }
    }
    let mut excerpt = diff
        .unified_diff()
        .context_radius(2)
        .header("primary", "shadow")
        .to_string();
    if excerpt.len() > MAX_EXCERPT {
        let mut end = MAX_EXCERPT;
        while !excerpt.is_char_boundary(end) {
            end -= 1;
        }
        excerpt.truncate(end);
        excerpt.push_str("\n… (cut)\n");
    }
    Some(TextChange {
        removed_lines,
        added_lines,
        excerpt,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_texts_have_no_change() {
        assert_eq!(diff("a\nb\n", "a\nb\n"), None);
    }

    #[test]
    fn changed_lines_are_counted_and_excerpted() {
        let change = diff("one\ntwo\nthree\n", "one\n2\nthree\nfour\n").unwrap();
        assert_eq!((change.removed_lines, change.added_lines), (1, 2));
        assert!(change.excerpt.contains("--- primary"));
        assert!(change.excerpt.contains("-two"));
        assert!(change.excerpt.contains("+2"));
        assert!(change.excerpt.contains("+four"));
    }

    #[test]
    fn excerpts_are_capped() {
        let a: String = (0..5000).map(|i| format!("line {i}\n")).collect();
        let b: String = (0..5000).map(|i| format!("LINE {i}\n")).collect();
        let change = diff(&a, &b).unwrap();
        assert!(change.excerpt.len() < MAX_EXCERPT + 32);
        assert_eq!(change.added_lines, 5000);
    }
}
