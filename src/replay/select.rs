//! Which recorded entries are replayed: the side-effect policy (methods), the route and
//! time filters, the answers a recording's cap left incomplete, and the limit, in that order.

use crate::record::Entry;
use std::time::SystemTime;

/// Methods replayed unless `--methods` says otherwise: the ones without side effects.
pub const SAFE_METHODS: [&str; 3] = ["GET", "HEAD", "OPTIONS"];

/// The filters, from the command line.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    /// Methods replayed (upper case); empty: [`SAFE_METHODS`]. `ALL` replays every method.
    pub methods: Vec<String>,
    /// Recorded route names, or path prefixes (starting with `/`); empty: every route.
    pub routes: Vec<String>,
    /// Only entries that started at or after this time.
    pub since: Option<SystemTime>,
    /// Only entries that started before this time.
    pub until: Option<SystemTime>,
    /// At most this many entries (after the other filters).
    pub limit: Option<usize>,
}

/// What the filters left out, by reason.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Excluded {
    /// A method not replayed (the side-effect policy).
    pub method: u64,
    /// Another route.
    pub route: u64,
    /// Outside the time range (or no readable start time while a range is given).
    pub time: u64,
    /// An answer cut at the recording's cap, while the recorded answers stand in for the
    /// primary: a whole shadow body would differ from the cut one, a divergence that is not.
    pub truncated: u64,
    /// Past `--limit`.
    pub limit: u64,
}

impl Filters {
    /// The entries to replay, in recorded order, and what was left out. `answers_recorded`:
    /// the recorded answers stand in for the primary (no live `--primary`).
    pub fn apply(&self, entries: Vec<Entry>, answers_recorded: bool) -> (Vec<Entry>, Excluded) {
        let mut excluded = Excluded::default();
        let mut kept = Vec::new();
        for entry in entries {
            if !self.method_allowed(&entry.request.method) {
                excluded.method += 1;
            } else if !self.route_allowed(&entry) {
                excluded.route += 1;
            } else if !self.time_allowed(&entry) {
                excluded.time += 1;
            } else if cut(&entry, answers_recorded) {
                excluded.truncated += 1;
            } else if self.limit.is_some_and(|limit| kept.len() >= limit) {
                excluded.limit += 1;
            } else {
                kept.push(entry);
            }
        }
        (kept, excluded)
    }

    fn method_allowed(&self, method: &str) -> bool {
        let method = method.to_ascii_uppercase();
        if self.methods.is_empty() {
            return SAFE_METHODS.contains(&method.as_str());
        }
        self.methods
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case("all") || *allowed == method)
    }

    fn route_allowed(&self, entry: &Entry) -> bool {
        if self.routes.is_empty() {
            return true;
        }
        let path = entry.path();
        let recorded = entry.shadowtap.as_ref().map(|extra| extra.route.as_str());
        self.routes
            .iter()
            .any(|route| match route.starts_with('/') {
                true => path.starts_with(route.as_str()),
                false => recorded == Some(route.as_str()),
            })
    }

    fn time_allowed(&self, entry: &Entry) -> bool {
        if self.since.is_none() && self.until.is_none() {
            return true;
        }
        let Some(started) = entry.started() else {
            return false;
        };
        self.since.is_none_or(|since| started >= since)
            && self.until.is_none_or(|until| started < until)
    }
}

/// Whether `entry`'s answer, cut at the recording's cap, is the one compared against.
fn cut(entry: &Entry, answers_recorded: bool) -> bool {
    answers_recorded
        && entry
            .shadowtap
            .as_ref()
            .is_some_and(|extra| extra.response_truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A recorded GET; `cut` is shadowtap's `response_truncated`, `None` for a browser's
    /// export (no extra).
    fn entry(cut: Option<bool>) -> Entry {
        let mut value = serde_json::json!({
            "startedDateTime": "2026-12-07T04:00:00.000Z", "time": 1.0,
            "request": {"method": "GET", "url": "http://shop.test/a", "httpVersion": "HTTP/1.1",
                        "cookies": [], "headers": [], "queryString": [], "headersSize": -1, "bodySize": 0},
            "response": {"status": 200, "statusText": "OK", "httpVersion": "HTTP/1.1", "cookies": [],
                         "headers": [], "content": {"size": 0, "mimeType": ""}, "redirectURL": "",
                         "headersSize": -1, "bodySize": 0},
            "cache": {}, "timings": {"send": 0, "wait": 1, "receive": 0}
        });
        if let (Some(cut), Some(object)) = (cut, value.as_object_mut()) {
            object.insert(
                "_shadowtap".into(),
                serde_json::json!({"route": "api", "response_truncated": cut}),
            );
        }
        serde_json::from_value(value).unwrap_or_else(|error| panic!("entry: {error}"))
    }

    /// Every combination of a cut answer and who answers as the primary: an entry is left out
    /// exactly when its answer was cut and stands in for the primary.
    #[test]
    fn entries_cut_at_record_time_are_left_out_exactly_when_they_would_mislead() {
        let table = [
            // (extra's cut flags, recorded answers are the primary, left out)
            (None, true, false),
            (None, false, false),
            (Some(false), true, false),
            (Some(false), false, false),
            (Some(true), true, true),
            (Some(true), false, false),
        ];
        for (cut, answers_recorded, left_out) in table {
            let (kept, excluded) = Filters::default().apply(vec![entry(cut)], answers_recorded);
            assert_eq!(
                (kept.len(), excluded.truncated),
                if left_out { (0, 1) } else { (1, 0) },
                "cut {cut:?}, recorded answers {answers_recorded}"
            );
        }
    }

    /// The limit counts only entries that are replayed.
    #[test]
    fn the_limit_counts_after_cut_entries_are_left_out() {
        let filters = Filters {
            limit: Some(2),
            ..Filters::default()
        };
        let entries = vec![
            entry(Some(true)),
            entry(Some(false)),
            entry(None),
            entry(Some(true)),
            entry(Some(false)),
        ];
        let (kept, excluded) = filters.apply(entries, true);
        assert_eq!(kept.len(), 2);
        assert_eq!((excluded.truncated, excluded.limit), (2, 1));
    }
}
