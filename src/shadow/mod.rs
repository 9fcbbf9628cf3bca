//! Mirroring: sampled copies of live requests sent to shadow upstreams, off the live path.
//!
//! Per request, the live path asks [`Mirror::plan`] once. The plan applies each shadow's
//! filters (path prefix, required headers), sampling, the side-effect policy (methods) and a
//! look at the circuit breaker; every request *sampled* for a shadow is then accounted for
//! with exactly one outcome (see [`crate::telemetry::MirrorOutcome`]). When the request body
//! copy completes (at once for bodiless requests), [`RequestTee`] builds one job per shadow
//! and queues it without waiting; the dispatcher (see [`dispatch`]) does the rest.
//!
//! | module | role |
//! |---|---|
//! | [`sample`] | percentage and sticky sampling |
//! | [`breaker`] | per-shadow circuit breaker |
//! | [`control`] | runtime pause/resume and percent switches (`PUT /api/v1/mirror`) |
//! | [`budget`] | one byte budget for every body the mirror side holds |
//! | [`copy`] | how a shadow's copy of a request differs from the primary's |
//! | [`dispatch`] | per-shadow queue, pool, in-flight cap, deadline, response cap |
//! | [`fields`] | captured header fields: views into one copy of a head |
//! | [`notice`] | failures and drops logged for operators, rate-limited |
//! | [`pair`] | the (request, primary, shadow) hand-off to comparison |
// The data path: no indexing that can panic (see docs/ARCHITECTURE.md).
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

// The message types moved below the engines; re-exported so their public paths
// (`shadowtap::shadow::fields::Fields`, ...) keep working for tests, benches and fuzzers.
pub use crate::message::{budget, copy, fields, pair};

pub mod breaker;
pub mod control;
pub mod dispatch;
pub mod notice;
pub mod sample;

use crate::config::{
    Config, MethodSet, PathRewrite, ShadowPolicy, StickySource, UpstreamId, UpstreamRef,
};
use crate::forward::client_body::BodyWatch;
use crate::message::budget::Budget;
use crate::message::budget::Held;
use crate::message::copy::HeaderEdits;
use crate::message::fields::{FieldLookup, Fields};
use crate::message::pair::{CapturedRequest, PairSink, PrimaryCell, PrimarySlot};
use crate::message::tee::{Cutoff, TeeResult, TeeSink};
use crate::record::{Dropped, Recorder};
use crate::telemetry::{Metrics, MirrorOutcome};
use bytes::Bytes;
use control::{MirrorControl, RouteHandles, RouteSwitch, ShadowSwitch};
use dispatch::{JobRole, Outlet, ShadowJob, ShadowTarget};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Version};
use sample::{Sampler, StickyKey};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// One shadow of one route, compiled for the request path.
struct CompiledShadow {
    target: usize,
    sampler: Sampler,
    methods: Option<Vec<Method>>,
    path_prefix: Option<String>,
    require_headers: Vec<HeaderName>,
    edits: Arc<HeaderEdits>,
    path_rewrite: Option<PathRewrite>,
    /// Its runtime switches (pause, percent override); the secondary's are never set.
    switch: Arc<ShadowSwitch>,
}

impl CompiledShadow {
    /// Whether this shadow's policy selects the request: its path prefix, required fields
    /// and sampling (a request it does not select is not counted at all).
    fn samples(&self, path: &str, query: Option<&str>, headers: &impl FieldLookup) -> bool {
        self.path_prefix
            .as_ref()
            .is_none_or(|prefix| path.starts_with(prefix.as_str()))
            && self
                .require_headers
                .iter()
                .all(|name| headers.first(name.as_str()).is_some())
            && self
                .sampler
                .sample_at(self.switch.percent_override(), headers, query)
    }
}

/// A route's mirroring policy, compiled.
struct CompiledRoute {
    /// The route's runtime pause switch.
    switch: Arc<RouteSwitch>,
    max_body_bytes: usize,
    /// gRPC methods whose client streams (from the route's descriptor set): never copied,
    /// counted as `skipped_method`. Empty without a descriptor set.
    client_streaming: Vec<String>,
    shadows: Vec<CompiledShadow>,
    secondary: Option<CompiledShadow>,
}

/// The mirroring engine shared by all connections.
pub struct Mirror {
    routes: Vec<Option<CompiledRoute>>,
    targets: Vec<Arc<ShadowTarget>>,
    /// Per target: its upstream's name and settings, which decide whether a reloaded config
    /// can keep it ([`Mirror::new`]).
    target_settings: Vec<TargetSettings>,
    marker_name: HeaderName,
    metrics: Arc<Metrics>,
    budget: Arc<Budget>,
    /// Where this config's jobs count their outcomes and send their pairs.
    outlet: Arc<Outlet>,
    control: Arc<MirrorControl>,
    /// `--record`: the exchanges sampled for the recording are captured here too.
    recorder: Option<Arc<Recorder>>,
}

/// What a shadow target is built from: equal settings make an equal target.
#[derive(PartialEq)]
struct TargetSettings {
    name: String,
    /// The upstream's and the mirror's settings, serialized (every field compared).
    settings: String,
}

impl TargetSettings {
    fn new(name: &str, upstream: &crate::config::UpstreamConfig, config: &Config) -> Self {
        let settings = crate::config::settings_text(&(upstream, &config.mirror));
        TargetSettings {
            name: name.to_string(),
            settings,
        }
    }
}

/// The shadows one request was sampled for; turned into jobs once its body is complete.
pub struct MirrorPlan {
    route_index: usize,
    route: (usize, usize),
    shadows: Vec<usize>,
    primary: PrimaryCell,
    /// When the request is recorded: when it started.
    recorded: Option<SystemTime>,
}

impl Mirror {
    /// The shadow names of each route, in policy order (for registering metrics).
    pub fn route_shadow_names(config: &Config) -> Vec<Vec<String>> {
        config
            .routes
            .iter()
            .map(|route| {
                route
                    .mirror
                    .as_ref()
                    .map(|mirror| {
                        // Metric positions: the shadows in order, then the secondary.
                        mirror
                            .shadows
                            .iter()
                            .map(|s| s.upstream.name().to_string())
                            .chain(mirror.secondary.as_ref().map(|s| s.name().to_string()))
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .collect()
    }

    /// Compiles every route's policy and builds one target per shadow upstream in use.
    /// `sink` receives completed pairs. Given the `previous` config's mirror (a reload), a
    /// shadow whose upstream and mirror settings are unchanged keeps its target: its queue,
    /// pool, in-flight requests and breaker carry on; the byte budget is kept unless its cap
    /// changed; and the runtime switches (pauses, percent overrides) carry over to the routes
    /// and shadows that still exist.
    pub fn new(
        config: &Config,
        metrics: Arc<Metrics>,
        sink: Option<Arc<dyn PairSink>>,
        previous: Option<&Mirror>,
    ) -> Mirror {
        let control = previous.map_or_else(MirrorControl::new, |previous| previous.control.clone());
        let mut handles = control.adopt(config, &metrics).into_iter();
        let marker = (
            HeaderName::from_bytes(config.mirror.marker_header.as_bytes())
                .unwrap_or(HeaderName::from_static("x-shadowtap-shadow")),
            HeaderValue::from_str(&config.mirror.marker_value)
                .unwrap_or(HeaderValue::from_static("1")),
        );
        let budget = match previous {
            Some(previous) if previous.budget.limit() == config.mirror.max_buffered_bytes => {
                previous.budget.clone()
            }
            _ => Budget::new(
                config.mirror.max_buffered_bytes,
                metrics.mirror_buffered_bytes(),
            ),
        };
        let mut ids: Vec<UpstreamId> = Vec::new();
        let mut targets: Vec<Arc<ShadowTarget>> = Vec::new();
        let mut target_settings: Vec<TargetSettings> = Vec::new();
        let mut target_for = |upstream: &UpstreamRef| -> usize {
            if let Some(index) = ids.iter().position(|known| *known == upstream.id()) {
                return index;
            }
            ids.push(upstream.id());
            let settings = TargetSettings::new(upstream.name(), upstream.config(), config);
            let kept = previous.and_then(|previous| {
                let index = previous
                    .target_settings
                    .iter()
                    .position(|known| *known == settings)?;
                previous.targets.get(index).cloned()
            });
            targets.push(kept.unwrap_or_else(|| {
                Arc::new(ShadowTarget::new(
                    upstream.name(),
                    upstream.config(),
                    &config.mirror,
                    &metrics,
                    budget.clone(),
                ))
            }));
            target_settings.push(settings);
            targets.len() - 1
        };
        let recorder = recorder_for(config, &metrics, previous);
        let mut routes = Vec::with_capacity(config.routes.len());
        for (route_index, route) in config.routes.iter().enumerate() {
            let switches = handles.next().flatten();
            // A route that only records: its requests are captured, mirrored nowhere.
            if route.mirror.is_none() {
                if let Some(recorder) = recorder
                    .as_ref()
                    .filter(|recorder| recorder.records_route(route_index))
                {
                    routes.push(Some(CompiledRoute {
                        switch: Arc::default(),
                        max_body_bytes: recorder.max_body_bytes(),
                        client_streaming: Vec::new(),
                        shadows: Vec::new(),
                        secondary: None,
                    }));
                    continue;
                }
            }
            let (
                Some(mirror),
                Some(RouteHandles {
                    route: switch,
                    shadows: switches,
                }),
            ) = (&route.mirror, switches)
            else {
                routes.push(None);
                continue;
            };
            let shadows = mirror
                .shadows
                .iter()
                .zip(switches)
                .map(|(policy, switch)| {
                    let target = target_for(&policy.upstream);
                    compile_shadow(policy, target, &route.name, &marker, switch)
                })
                .collect();
            // The secondary gets a plain copy: no sampling of its own, no header rewrites.
            let secondary = mirror.secondary.as_ref().map(|name| {
                let policy = ShadowPolicy {
                    upstream: name.clone(),
                    percent: 100.0,
                    sticky: None,
                    methods: MethodSet::All(crate::config::AllMethods::All),
                    path_prefix: None,
                    require_headers: Vec::new(),
                    add_headers: Default::default(),
                    remove_headers: Vec::new(),
                    host_rewrite: None,
                    path_rewrite: None,
                };
                let target = target_for(name);
                compile_shadow(&policy, target, &route.name, &marker, Arc::default())
            });
            let client_streaming = route
                .compare
                .protobuf
                .clone()
                .map(|pool| crate::compare::protobuf::Schema::new(pool).client_streaming_paths())
                .unwrap_or_default();
            routes.push(Some(CompiledRoute {
                switch,
                max_body_bytes: mirror.max_body_bytes,
                client_streaming,
                shadows,
                secondary,
            }));
        }
        Mirror {
            routes,
            targets,
            target_settings,
            marker_name: marker.0,
            outlet: Arc::new(Outlet {
                metrics: metrics.clone(),
                sink,
            }),
            metrics,
            budget,
            control,
            recorder,
        }
    }

    /// Retires the targets of this mirror that `next` (the mirror of a reloaded config) does
    /// not keep: they send what they have queued, then end.
    pub fn retire_unused(&self, next: &Mirror) {
        for target in &self.targets {
            if !next.targets.iter().any(|kept| Arc::ptr_eq(kept, target)) {
                target.retire();
            }
        }
    }

    /// The runtime switches this mirror reads (for the admin API, and for a mirror rebuilt
    /// on reload).
    pub fn control(&self) -> &Arc<MirrorControl> {
        &self.control
    }

    /// The byte budget every body kept for comparison is held against.
    pub fn budget(&self) -> &Arc<Budget> {
        &self.budget
    }

    /// Starts every shadow's dispatcher (a target kept from a previous config is running
    /// already, and is left as it is).
    pub fn start(&self) {
        for target in &self.targets {
            target.start();
        }
    }

    /// Stops every shadow's dispatcher (at shutdown, once live traffic has drained).
    pub fn stop(&self) {
        for target in &self.targets {
            target.stop();
        }
    }

    /// Whether a route mirrors at all (the common no-mirror case costs this one check).
    pub fn route_mirrors(&self, route: usize) -> bool {
        matches!(self.routes.get(route), Some(Some(_)))
    }

    /// Decides which shadows get a copy of this request, counting the sampled ones that are
    /// skipped. `None` when nothing is to be mirrored.
    pub fn plan(
        &self,
        route_index: usize,
        route: (usize, usize),
        method: &Method,
        path: &str,
        query: Option<&str>,
        headers: &impl FieldLookup,
    ) -> Option<(MirrorPlan, PrimarySlot)> {
        let compiled = self.routes.get(route_index)?.as_ref()?;
        let route_metrics = self.metrics.route(Some(route));
        if headers.first(self.marker_name.as_str()).is_some() {
            // Loop guard: this request is itself a shadow copy.
            self.metrics.record_loop_guard(route_metrics);
            return None;
        }
        let route_paused = self.control.paused_all() || compiled.switch.paused();
        let client_streams = compiled
            .client_streaming
            .iter()
            .any(|method| method == path);
        let mut shadows = Vec::new();
        for (position, shadow) in compiled.shadows.iter().enumerate() {
            if !shadow.samples(path, query, headers) {
                continue;
            }
            // Sampled: from here on every path ends in exactly one outcome.
            if route_paused || shadow.switch.paused() {
                self.metrics
                    .record_mirror(route_metrics, position, MirrorOutcome::SkippedPaused);
                continue;
            }
            if client_streams
                || shadow
                    .methods
                    .as_ref()
                    .is_some_and(|methods| !methods.contains(method))
            {
                self.metrics
                    .record_mirror(route_metrics, position, MirrorOutcome::SkippedMethod);
                continue;
            }
            if self
                .targets
                .get(shadow.target)
                .is_none_or(|target| target.circuit_open())
            {
                self.metrics.record_mirror(
                    route_metrics,
                    position,
                    MirrorOutcome::SkippedCircuitOpen,
                );
                continue;
            }
            shadows.push(position);
        }
        let recorded = match &self.recorder {
            Some(recorder) if recorder.samples(route_index) => Some(SystemTime::now()),
            _ => None,
        };
        if shadows.is_empty() && recorded.is_none() {
            return None;
        }
        let (slot, primary) = PrimarySlot::new();
        Some((
            MirrorPlan {
                route_index,
                route,
                shadows,
                primary,
                recorded,
            },
            slot,
        ))
    }

    /// Counts an upgrade request, which is never mirrored: `skipped_upgrade` for each shadow
    /// whose policy samples it (`skipped_paused` for a paused one), as [`Mirror::plan`]
    /// would count it, so the outcomes still add up to what was sampled.
    pub fn upgrade_not_mirrored(
        &self,
        route_index: usize,
        route: (usize, usize),
        path: &str,
        query: Option<&str>,
        headers: &impl FieldLookup,
    ) {
        let Some(Some(compiled)) = self.routes.get(route_index) else {
            return;
        };
        let route_metrics = self.metrics.route(Some(route));
        if headers.first(self.marker_name.as_str()).is_some() {
            self.metrics.record_loop_guard(route_metrics);
            return;
        }
        let route_paused = self.control.paused_all() || compiled.switch.paused();
        for (position, shadow) in compiled.shadows.iter().enumerate() {
            if !shadow.samples(path, query, headers) {
                continue;
            }
            let outcome = if route_paused || shadow.switch.paused() {
                MirrorOutcome::SkippedPaused
            } else {
                MirrorOutcome::SkippedUpgrade
            };
            self.metrics.record_mirror(route_metrics, position, outcome);
        }
    }

    /// The cap on the request body copy for a route.
    pub fn max_body_bytes(&self, route_index: usize) -> usize {
        self.routes
            .get(route_index)
            .and_then(Option::as_ref)
            .map_or(0, |route| route.max_body_bytes)
    }

    fn finish(
        &self,
        plan: MirrorPlan,
        request: RequestHead,
        trailers: Option<HeaderMap>,
        result: TeeResult,
    ) {
        let route_metrics = self.metrics.route(Some(plan.route));
        let Some(Some(compiled)) = self.routes.get(plan.route_index) else {
            return;
        };
        // The secondary (if any) goes along with every mirrored request, at the position
        // after the shadows, so its outcomes are accounted for like theirs (a request that
        // is only recorded is mirrored nowhere).
        let secondary = compiled
            .secondary
            .as_ref()
            .filter(|_| !plan.shadows.is_empty())
            .map(|secondary| (compiled.shadows.len(), secondary));
        let (body, held) = match copy_outcome(result) {
            Ok(kept) => kept,
            Err(outcome) => {
                if let (Some(recorder), Some(_)) = (&self.recorder, plan.recorded) {
                    recorder.dropped(match outcome {
                        MirrorOutcome::DroppedMemoryBudget => Dropped::OverBudget,
                        MirrorOutcome::DroppedClientAborted => Dropped::ClientAborted,
                        MirrorOutcome::DroppedPrimaryFailed => Dropped::PrimaryFailed,
                        _ => Dropped::BodyTooLarge,
                    });
                }
                let shadows = plan.shadows.iter().filter_map(|position| {
                    Some((*position, compiled.shadows.get(*position)?.target))
                });
                let secondary = secondary.map(|(position, secondary)| (position, secondary.target));
                for (position, target) in shadows.chain(secondary) {
                    self.metrics.record_mirror(route_metrics, position, outcome);
                    if let Some(target) = self.targets.get(target) {
                        target.notice(outcome);
                    }
                }
                return;
            }
        };
        let captured = Arc::new(CapturedRequest {
            method: request.method,
            version: request.version,
            path_and_query: request
                .path_and_query
                .as_ref()
                .map_or("/", PathAndQuery::as_str)
                .to_string(),
            headers: request.headers,
            body,
            trailers,
            request_id: request.request_id,
            held,
        });
        if let (Some(recorder), Some(started)) = (&self.recorder, plan.recorded) {
            recorder.submit(
                plan.route_index,
                captured.clone(),
                plan.primary.clone(),
                started,
            );
        }
        let enqueued = Instant::now();
        let secondary_cell = secondary.map(|(position, policy)| {
            let (slot, cell) = PrimarySlot::new();
            let role = JobRole::Secondary {
                slot,
                primary: plan.primary.clone(),
            };
            self.enqueue(
                plan.route,
                position,
                policy,
                &captured,
                request.path_and_query.as_ref(),
                role,
                enqueued,
            );
            cell
        });
        for position in plan.shadows {
            let Some(shadow) = compiled.shadows.get(position) else {
                continue;
            };
            let role = JobRole::Shadow {
                primary: plan.primary.clone(),
                secondary: secondary_cell.clone(),
            };
            self.enqueue(
                plan.route,
                position,
                shadow,
                &captured,
                request.path_and_query.as_ref(),
                role,
                enqueued,
            );
        }
    }

    /// Builds one job and queues it without waiting; a full queue is counted.
    #[allow(clippy::too_many_arguments)]
    fn enqueue(
        &self,
        route: (usize, usize),
        position: usize,
        shadow: &CompiledShadow,
        captured: &Arc<CapturedRequest>,
        path_and_query: Option<&PathAndQuery>,
        role: JobRole,
        enqueued: Instant,
    ) {
        let route_metrics = self.metrics.route(Some(route));
        let Some(target) = self.targets.get(shadow.target) else {
            return;
        };
        let Some(path_and_query) = shadow_path(shadow, path_and_query) else {
            self.metrics
                .record_mirror(route_metrics, position, MirrorOutcome::Error);
            target.notice(MirrorOutcome::Error);
            return;
        };
        let job = ShadowJob {
            outlet: self.outlet.clone(),
            route,
            shadow: position,
            path_and_query,
            edits: shadow.edits.clone(),
            captured: captured.clone(),
            role,
            enqueued,
        };
        if !target.try_enqueue(job) {
            self.metrics
                .record_mirror(route_metrics, position, MirrorOutcome::DroppedQueueFull);
            target.notice(MirrorOutcome::DroppedQueueFull);
        }
    }
}

/// What a request body's copy is for the shadows: the body (and what it holds against the
/// budget) when whole, else the one outcome every shadow it was sampled for counts. A body
/// cut short is the client's loss only when its source failed (the client closed, reset,
/// paused or broke its framing); a body its reader let go unfinished (the primary failed,
/// timed out, or answered without reading it all) is the primary's.
fn copy_outcome(result: TeeResult) -> Result<(Bytes, Held), MirrorOutcome> {
    match result {
        // Charged as it was captured: this sink names the budget.
        TeeResult::Complete(body, held) => {
            debug_assert_eq!(held.bytes(), body.len(), "a request tee is charged");
            Ok((body, held))
        }
        TeeResult::OverBudget => Err(MirrorOutcome::DroppedMemoryBudget),
        TeeResult::TooLarge => Err(MirrorOutcome::DroppedBodyTooLarge),
        TeeResult::Incomplete(Cutoff::Source) => Err(MirrorOutcome::DroppedClientAborted),
        TeeResult::Incomplete(Cutoff::Reader) => Err(MirrorOutcome::DroppedPrimaryFailed),
        // Not produced: this sink asks for no digest.
        TeeResult::Digested { .. } => Err(MirrorOutcome::DroppedBodyTooLarge),
    }
}

/// The recorder of a new mirror: the previous mirror's when the settings are unchanged (its
/// file and queue carry on), else a new one. A recording that cannot open its file is logged
/// and left off: validation checked the file, so this is a disk that changed since.
fn recorder_for(
    config: &Config,
    metrics: &Metrics,
    previous: Option<&Mirror>,
) -> Option<Arc<Recorder>> {
    config.record.as_ref()?;
    if let Some(kept) = previous
        .and_then(|previous| previous.recorder.as_ref())
        .filter(|kept| kept.fits(config))
    {
        return Some(kept.clone());
    }
    match Recorder::start(config, metrics) {
        Ok(recorder) => recorder,
        Err(error) => {
            tracing::error!(error = %error, cause = %std::error::Error::source(&error).map(ToString::to_string).unwrap_or_default(), "recording is off");
            None
        }
    }
}

/// The path and query the shadow gets: the primary's, with the policy's prefix rewrite.
/// `None` when the rewrite makes an invalid one.
fn shadow_path(shadow: &CompiledShadow, original: Option<&PathAndQuery>) -> Option<PathAndQuery> {
    let original = match original {
        Some(original) => original,
        None => return Some(PathAndQuery::from_static("/")),
    };
    match &shadow.path_rewrite {
        Some(rewrite) if original.as_str().starts_with(rewrite.prefix.as_str()) => {
            let rewritten = format!(
                "{}{}",
                rewrite.replacement,
                &original.as_str()[rewrite.prefix.len()..]
            );
            PathAndQuery::try_from(rewritten).ok()
        }
        _ => Some(original.clone()),
    }
}

fn compile_shadow(
    policy: &ShadowPolicy,
    target: usize,
    route: &str,
    marker: &(HeaderName, HeaderValue),
    switch: Arc<ShadowSwitch>,
) -> CompiledShadow {
    let sticky = policy.sticky.as_ref().and_then(|sticky| match sticky {
        StickySource::Header(name) => HeaderName::from_bytes(name.as_bytes())
            .ok()
            .map(StickyKey::Header),
        StickySource::Cookie(name) => Some(StickyKey::Cookie(name.clone())),
        StickySource::Query(name) => Some(StickyKey::Query(name.clone())),
    });
    let header_names = |names: &[String]| -> Vec<HeaderName> {
        names
            .iter()
            .filter_map(|name| HeaderName::from_bytes(name.as_bytes()).ok())
            .collect()
    };
    CompiledShadow {
        target,
        sampler: Sampler::new(
            policy.percent,
            sticky,
            &format!("{route}/{}", policy.upstream),
        ),
        methods: match &policy.methods {
            MethodSet::All(_) => None,
            MethodSet::List(list) => Some(
                list.iter()
                    .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
                    .collect(),
            ),
        },
        path_prefix: policy.path_prefix.clone(),
        require_headers: header_names(&policy.require_headers),
        edits: Arc::new(HeaderEdits::new(
            header_names(&policy.remove_headers),
            policy
                .add_headers
                .iter()
                .filter_map(|(name, value)| {
                    Some((
                        HeaderName::from_bytes(name.as_bytes()).ok()?,
                        HeaderValue::from_str(value).ok()?,
                    ))
                })
                .collect(),
            policy
                .host_rewrite
                .as_deref()
                .and_then(|host| HeaderValue::from_str(host).ok()),
            marker.clone(),
        )),
        path_rewrite: policy.path_rewrite.clone(),
        switch,
    }
}

/// The parts of the forwarded request a shadow copy needs, taken before the body streams.
pub struct RequestHead {
    /// Method.
    pub method: Method,
    /// The protocol the client spoke.
    pub version: Version,
    /// Path and query as received.
    pub path_and_query: Option<PathAndQuery>,
    /// Header fields as sent to the primary.
    pub headers: Fields,
    /// The request id.
    pub request_id: String,
}

/// The request-body tee's sink: when the copy is complete, queue the shadow jobs.
pub struct RequestTee {
    mirror: Arc<Mirror>,
    plan: MirrorPlan,
    head: RequestHead,
    /// The body's trailer fields, when it had any (a chunked or HTTP/2 request).
    trailers: Option<HeaderMap>,
    /// On the hyper path: how the client's body failed, for a body dropped unfinished.
    source: Option<BodyWatch>,
}

impl RequestTee {
    /// Ties a plan to the request head it will copy.
    pub fn new(mirror: Arc<Mirror>, plan: MirrorPlan, head: RequestHead) -> RequestTee {
        RequestTee {
            mirror,
            plan,
            head,
            trailers: None,
            source: None,
        }
    }

    /// The watch on the client's body (the hyper path's [`ClientBody`]): a body its reader
    /// dropped unfinished after the client's side had failed — hyper let go of a request
    /// whose client reset its stream while the upload waited on the primary — is the
    /// client's loss, not the primary's.
    ///
    /// [`ClientBody`]: crate::forward::client_body::ClientBody
    pub fn watch_source(&mut self, watch: BodyWatch) {
        watch.watch_drop();
        self.source = Some(watch);
    }
}

/// The captured body is charged to the mirror's byte budget as it arrives.
impl TeeSink for RequestTee {
    fn finish(self, result: TeeResult) {
        let result = match (result, &self.source) {
            (TeeResult::Incomplete(Cutoff::Reader), Some(watch)) if watch.client_failed() => {
                TeeResult::Incomplete(Cutoff::Source)
            }
            (result, _) => result,
        };
        self.mirror
            .finish(self.plan, self.head, self.trailers, result);
    }

    fn budget(&self) -> Option<&Arc<Budget>> {
        Some(&self.mirror.budget)
    }

    /// Kept as the primary gets them: without the fields a trailer section must not carry,
    /// which the primary's writer leaves out too (one rule for every copy).
    fn trailers(&mut self, trailers: &HeaderMap) {
        let mut kept = HeaderMap::with_capacity(trailers.len());
        for (name, value) in trailers {
            if !crate::h1::upstream::forbidden_trailer(name) {
                kept.append(name.clone(), value.clone());
            }
        }
        self.trailers = Some(kept);
    }
}

#[cfg(test)]
#[path = "outcome_tests.rs"]
mod outcome_tests;
