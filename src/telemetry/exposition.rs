//! The Prometheus text format, as far as shadowtap reads its own metrics back (the
//! verdict's admin source, the admin history's mirror outcomes and breaker states, replay's
//! summary): the sample lines of one metric, with their labels and values.

/// One sample line: its labels and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// `(name, value)` pairs, unescaped, in line order.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
}

impl Sample {
    /// The value of label `name`, if present.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Every sample of `metric` in `text`; lines that do not parse are passed over.
pub fn samples(text: &str, metric: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let rest = line.strip_prefix(metric)?;
            let (labels, rest) = match rest.strip_prefix('{') {
                Some(inner) => parse_labels(inner)?,
                None if rest.starts_with(' ') => (Vec::new(), rest),
                None => return None,
            };
            let value = rest.split_whitespace().next()?.parse::<f64>().ok()?;
            Some(Sample { labels, value })
        })
        .collect()
}

/// `k="v",k2="v2"}` -> the pairs and what follows the closing brace.
fn parse_labels(mut text: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        text = text.trim_start_matches([',', ' ']);
        if let Some(rest) = text.strip_prefix('}') {
            return Some((labels, rest));
        }
        let (name, rest) = text.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                (_, c) => value.push(c),
            }
        };
        labels.push((name.trim().to_string(), value));
        text = rest.get(end + 1..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_lines_are_read_with_escaped_labels() {
        let text = "# HELP x y\n\
            shadowtap_mirror_requests_total{route=\"/a \\\"b\\\"\",shadow=\"canary\",outcome=\"error\"} 3\n\
            shadowtap_mirror_requests_total_other{route=\"x\"} 9\n\
            shadowtap_mirror_requests_total 5\n";
        let found = samples(text, "shadowtap_mirror_requests_total");
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].label("route"), Some("/a \"b\""));
        assert_eq!(found[0].label("outcome"), Some("error"));
        assert_eq!(found[0].value, 3.0);
        assert_eq!(found[1].value, 5.0);
    }
}
