use super::*;
use crate::config::{Config, Overrides};

fn config(percent: &str) -> Config {
    let text = format!(
        r#"
[upstreams.app]
url = "http://127.0.0.1:1"
[upstreams.v2]
url = "http://127.0.0.1:2"
[upstreams.v3]
url = "http://127.0.0.1:3"
[[routes]]
name = "api"
path_prefix = "/api"
primary = "app"
[routes.mirror]
[[routes.mirror.shadows]]
upstream = "v2"
percent = {percent}
[[routes.mirror.shadows]]
upstream = "v3"
[[routes]]
name = "web"
primary = "app"
[routes.mirror]
[[routes.mirror.shadows]]
upstream = "v2"
"#
    );
    Config::from_toml(&text, &Overrides::default()).expect("valid config")
}

fn metrics() -> Metrics {
    Metrics::new(&[], &[])
}

fn paused(view: &ControlView, route: &str, shadow: &str) -> bool {
    view.routes
        .iter()
        .find(|r| r.route == route)
        .and_then(|r| r.shadows.iter().find(|s| s.shadow == shadow))
        .map(|s| s.paused)
        .expect("pair in view")
}

#[test]
fn pauses_apply_at_their_level_and_resume_clears_beneath() {
    let control = MirrorControl::new();
    let handles = control.adopt(&config("50"), &metrics());
    let api = handles[0].as_ref().expect("api mirrors");
    let change = |route: Option<&str>, shadow: Option<&str>, paused: bool| MirrorChange {
        route: route.map(str::to_string),
        shadow: shadow.map(str::to_string),
        paused: Some(paused),
        percent: None,
    };
    let view = control
        .apply(&change(None, Some("v2"), true))
        .expect("known");
    assert!(paused(&view, "api", "v2") && paused(&view, "web", "v2"));
    assert!(!paused(&view, "api", "v3"));
    assert!(api.shadows[0].paused() && !api.shadows[1].paused());

    let view = control
        .apply(&change(Some("api"), None, true))
        .expect("known");
    assert!(paused(&view, "api", "v3") && api.route.paused());
    let view = control.apply(&change(None, None, false)).expect("known");
    assert!(view
        .routes
        .iter()
        .all(|r| r.shadows.iter().all(|s| !s.paused)));

    control.apply(&change(None, None, true)).expect("known");
    assert!(control.paused_all());
    assert!(paused(&control.view(), "web", "v2"));
}

#[test]
fn unknown_names_change_nothing() {
    let control = MirrorControl::new();
    control.adopt(&config("50"), &metrics());
    let pause = |route: Option<&str>, shadow: Option<&str>| MirrorChange {
        route: route.map(str::to_string),
        shadow: shadow.map(str::to_string),
        paused: Some(true),
        percent: Some(1.0),
    };
    assert_eq!(
        control.apply(&pause(Some("nope"), None)).err(),
        Some(ControlError::UnknownRoute("nope".into()))
    );
    assert!(matches!(
        control.apply(&pause(Some("web"), Some("v3"))),
        Err(ControlError::UnknownShadowOnRoute { .. })
    ));
    assert!(matches!(
        control.apply(&pause(None, Some("v9"))),
        Err(ControlError::UnknownShadow(_))
    ));
    let view = control.view();
    assert!(!view.paused);
    assert!(view
        .routes
        .iter()
        .flat_map(|r| &r.shadows)
        .all(|s| !s.paused && !s.percent_overridden));
}

#[test]
fn a_readopted_config_keeps_switches_unless_its_percent_changed() {
    let control = MirrorControl::new();
    let first = control.adopt(&config("50"), &metrics());
    control
        .apply(&MirrorChange {
            route: Some("api".into()),
            shadow: None,
            paused: Some(true),
            percent: Some(5.0),
        })
        .expect("known");
    let same = control.adopt(&config("50"), &metrics());
    let (before, after) = (
        first[0].as_ref().expect("api"),
        same[0].as_ref().expect("api"),
    );
    assert!(Arc::ptr_eq(&before.route, &after.route));
    assert!(after.route.paused());
    assert_eq!(after.shadows[0].percent_override(), Some(5.0));
    assert_eq!(after.shadows[1].percent_override(), Some(5.0));

    let edited = control.adopt(&config("20"), &metrics());
    let edited = edited[0].as_ref().expect("api");
    assert_eq!(
        edited.shadows[0].percent_override(),
        None,
        "the file was edited"
    );
    assert_eq!(edited.shadows[1].percent_override(), Some(5.0));
    assert!(edited.route.paused());
    assert_eq!(
        control.for_label("api", "v2").map(|s| s.percent),
        Some(20.0)
    );
}
