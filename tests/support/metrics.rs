//! Reading the admin `/metrics` text (Prometheus exposition format): one parser of sample
//! lines, asked either for one series or for the sum of several.

/// The values of every sample line of `name` carrying all of `labels` (`name{a="b",...}
/// value`), in the order they appear; lines whose value does not parse are passed over.
fn samples<'a>(
    metrics: &'a str,
    name: &'a str,
    labels: &'a [(&str, &str)],
) -> impl Iterator<Item = f64> + 'a {
    metrics
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(move |line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            let rest = rest.strip_suffix('}').unwrap_or(rest);
            if metric != name {
                return None;
            }
            let all = labels
                .iter()
                .all(|(k, v)| rest.split(',').any(|pair| pair == format!("{k}=\"{v}\"")));
            all.then(|| value.parse::<f64>().ok())?
        })
}

/// The value of the first series of `name` carrying all of `labels`; `None` when no such
/// series exists.
pub fn metric_value(metrics: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples(metrics, name, labels).next()
}

/// The sum of every series of `name` carrying all of `labels` (0 when there is none:
/// counters appear on first use).
pub fn metric_sum(metrics: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    samples(metrics, name, labels).sum()
}
