use super::*;
use proptest::prelude::*;

#[test]
fn identifier_segments_become_id_and_words_stay() {
    for (path, want) in [
        ("/users/42", "/users/{id}"),
        ("/users/42/orders/7?expand=1", "/users/{id}/orders/{id}"),
        (
            "/traces/3f2504e0-4f89-11d3-9a0c-0305e82c3301",
            "/traces/{id}",
        ),
        ("/objects/507f1f77bcf86cd799439011", "/objects/{id}"),
        ("/commits/9fceb02", "/commits/9fceb02"),
        (
            "/commits/9fceb02d0ae598e95dc970b74767f19372d61af8",
            "/commits/{id}",
        ),
        ("/sessions/01HV6Z3K9Q8W7E6R5T4Y3U2I1O", "/sessions/{id}"),
        ("/t/dXNlcjo0Mg-x_9Zq1w", "/t/{id}"),
        ("/reports/2026-11-22", "/reports/{id}"),
        ("/files/1234abc", "/files/{id}"),
        ("/api/v2/users", "/api/v2/users"),
        ("/items/item42", "/items/item42"),
        ("/auth/2fa", "/auth/2fa"),
        ("/deadbeef/facade", "/deadbeef/facade"),
        ("/api/catalog", "/api/catalog"),
        ("/", "/"),
        ("", ""),
        ("/a//b/", "/a//b/"),
        ("/users/{id}", "/users/{id}"),
    ] {
        assert_eq!(template(path), want, "{path}");
    }
}

#[test]
fn uuid_shape_is_exact() {
    assert!(is_uuid("3f2504e0-4f89-11d3-9a0c-0305e82c3301"));
    assert!(!is_uuid("3f2504e0-4f89-11d3-9a0c-0305e82c3301-1"));
    assert!(!is_uuid("3f2504e0-4f89-11d3-9a0c"));
    assert!(!is_uuid("3f2504e0-4f89-11d3-9a0c-0305e82c330g"));
}

#[test]
fn endpoints_past_the_bound_share_the_overflow_endpoint() {
    let mut namer = EndpointNamer::new("default", 2);
    let a = namer.name("GET", None, "/users/1");
    assert_eq!((a.id, &*a.name), (0, "GET /users/{id}"));
    assert_eq!(
        &*namer.name("GET", None, "/users/2?x=1").name,
        "GET /users/{id}"
    );
    assert_eq!(
        &*namer.name("POST", None, "/users/2").name,
        "POST /users/{id}"
    );
    assert_eq!(&*namer.name("GET", None, "/orders/9").name, "default:other");
    assert_eq!(
        &*namer.name("GET", None, "/orders/10").name,
        "default:other"
    );
    assert_eq!(namer.overflowed(), 2);
    assert_eq!(
        namer.name("GET", None, "/orders/11").id,
        2,
        "one id for the overflow"
    );
    assert_eq!(
        &*namer.name("GET", None, "/users/3").name,
        "GET /users/{id}"
    );
    assert_eq!(
        &*namer.name("GET", Some("/static/*"), "/static/x.css").name,
        "default:other"
    );
    let mut templated = EndpointNamer::new("api", 4);
    assert_eq!(
        &*templated
            .name("GET", Some("/users/{name}"), "/users/ann")
            .name,
        "GET /users/{name}",
        "a route's own template wins over the shape"
    );
}

proptest! {
    /// Whatever the traffic, a route holds at most `limit` names, each of bounded size, and
    /// requests that differ only in their ids share one endpoint.
    #[test]
    fn names_are_bounded_and_ids_do_not_split_endpoints(
        paths in proptest::collection::vec("(/[a-z0-9{}%.~-]{0,40}){0,12}", 1..60),
        ids in proptest::collection::vec(0u64..u64::MAX, 2..5),
        limit in 1usize..8,
    ) {
        let mut namer = EndpointNamer::new("r", limit);
        for path in &paths {
            let name = namer.name("GET", None, path).name;
            prop_assert!(name.len() <= "GET ".len() + MAX_TEMPLATE_BYTES + '…'.len_utf8());
        }
        prop_assert!(namer.ids.len() <= limit);
        prop_assert!(namer.names().len() <= limit + 1);
        let shapes: std::collections::HashSet<String> = ids
            .iter()
            .map(|id| template(&format!("/users/{id}/orders/{id:032x}")))
            .collect();
        prop_assert_eq!(shapes.len(), 1, "{:?}", shapes);
        let long = "/x".repeat(1000);
        prop_assert!(template(&long).len() <= MAX_TEMPLATE_BYTES + '…'.len_utf8());
    }
}
