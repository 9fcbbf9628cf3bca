//! Which recorded entries are replayed: the side-effect policy (methods), the route and
//! time filters, and the limit, in that order.

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
    /// Past `--limit`.
    pub limit: u64,
}

impl Filters {
    /// The entries to replay, in recorded order, and what was left out.
    pub fn apply(&self, entries: Vec<Entry>) -> (Vec<Entry>, Excluded) {
        let mut excluded = Excluded::default();
        let mut kept = Vec::new();
        for entry in entries {
            if !self.method_allowed(&entry.request.method) {
                excluded.method += 1;
            } else if !self.route_allowed(&entry) {
                excluded.route += 1;
            } else if !self.time_allowed(&entry) {
                excluded.time += 1;
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
