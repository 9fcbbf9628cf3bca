#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
use super::*;

/// Every name the table knows, with its class: the documented table, tested against
/// [`classify`] in every case spelling.
const TABLE: [(&str, FieldClass); 14] = [
    ("connection", FieldClass::Connection),
    ("keep-alive", FieldClass::HopByHop),
    ("proxy-connection", FieldClass::HopByHop),
    ("te", FieldClass::Te),
    ("transfer-encoding", FieldClass::TransferEncoding),
    ("upgrade", FieldClass::Upgrade),
    ("content-length", FieldClass::ContentLength),
    ("host", FieldClass::Host),
    ("expect", FieldClass::Expect),
    ("x-forwarded-for", FieldClass::XForwardedFor),
    ("x-forwarded-proto", FieldClass::XForwardedProto),
    ("x-forwarded-host", FieldClass::XForwardedHost),
    ("via", FieldClass::Via),
    ("x-request-id", FieldClass::RequestId),
];

#[test]
fn every_name_in_the_table_classifies_in_any_case() {
    for (name, class) in TABLE {
        assert_eq!(classify(name.as_bytes()), class, "{name}");
        assert_eq!(
            classify(name.to_ascii_uppercase().as_bytes()),
            class,
            "{name}"
        );
        // Alternate case, the spelling a careless or hostile client might send.
        let mixed: String = name
            .chars()
            .enumerate()
            .map(|(i, c)| match i % 2 {
                0 => c.to_ascii_uppercase(),
                _ => c,
            })
            .collect();
        assert_eq!(classify(mixed.as_bytes()), class, "{mixed}");
    }
}

#[test]
fn a_name_one_byte_off_is_end_to_end() {
    for (name, _) in TABLE {
        for at in 0..name.len() {
            let mut near = name.as_bytes().to_vec();
            near[at] = b'q';
            if near != name.as_bytes() {
                assert_eq!(classify(&near), FieldClass::EndToEnd, "{near:?}");
            }
        }
        let longer = format!("{name}s");
        assert_eq!(classify(longer.as_bytes()), FieldClass::EndToEnd);
        assert_eq!(
            classify(&name.as_bytes()[..name.len() - 1]),
            FieldClass::EndToEnd
        );
    }
}

#[test]
fn hop_by_hop_is_exactly_the_rfc_list_and_proxy_connection() {
    let hop: Vec<&str> = TABLE
        .iter()
        .filter(|(_, class)| class.is_hop_by_hop())
        .map(|(name, _)| *name)
        .collect();
    assert_eq!(
        hop,
        [
            "connection",
            "keep-alive",
            "proxy-connection",
            "te",
            "transfer-encoding",
            "upgrade"
        ]
    );
}

#[test]
fn connection_options_are_trimmed_and_close_and_keep_alive_name_nothing() {
    let options: Vec<ConnectionOption<'_>> =
        connection_options(b" keep-alive ,, Close,\tX-Hop , ").collect();
    assert_eq!(
        options,
        [
            ConnectionOption::KeepAlive,
            ConnectionOption::Close,
            ConnectionOption::Names(b"X-Hop"),
        ]
    );
}

#[test]
fn connection_names_any_field_but_host_and_content_length() {
    let values: [&[u8]; 2] = [b"keep-alive", b"x-hop, HOST, content-length, Via"];
    assert!(named_by_connection(values, b"X-HOP"));
    assert!(named_by_connection(values, b"via"));
    assert!(!named_by_connection(values, b"host"));
    assert!(!named_by_connection(values, b"Content-Length"));
    // Hop-by-hop fields go anyway: naming them removes nothing more (`TE` is read first).
    assert!(!named_by_connection([b"te, connection".as_slice()], b"TE"));
    assert!(!named_by_connection(
        [b"te, connection".as_slice()],
        b"connection"
    ));
    // `close` is an option, not a field name: a field called `close` stays.
    assert!(!named_by_connection([b"close".as_slice()], b"close"));
    assert!(!named_by_connection(values, b"x-other"));
}

#[test]
fn te_trailers_is_found_among_other_codings() {
    assert!(te_accepts_trailers(b"gzip, Trailers"));
    assert!(!te_accepts_trailers(b"gzip"));
    assert!(!te_accepts_trailers(b"trailers-not"));
}

#[test]
fn request_ids_are_visible_ascii_up_to_200_bytes() {
    assert!(request_id_is_sane(b"abc-123"));
    assert!(!request_id_is_sane(b""));
    assert!(!request_id_is_sane(b"a b"));
    assert!(request_id_is_sane(&[b'a'; 200]));
    assert!(!request_id_is_sane(&[b'a'; 201]));
    let mut buffer = uuid::Uuid::encode_buffer();
    assert_eq!(new_request_id(&mut buffer).len(), 36);
}

/// The word-at-a-time encoder writes what the uuid crate would: a lowercase, hyphenated
/// version-4 UUID of the RFC variant, the same text the crate formats from the parsed value,
/// and no two alike.
#[test]
fn new_request_ids_are_version_4_uuids_as_the_uuid_crate_writes_them() {
    let mut seen = std::collections::HashSet::new();
    for _ in 0..10_000 {
        let id = new_request_id_bytes();
        let text = std::str::from_utf8(&id).unwrap();
        let parsed = uuid::Uuid::parse_str(text).unwrap();
        assert_eq!(parsed.get_version_num(), 4, "{text}");
        assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122, "{text}");
        assert_eq!(parsed.hyphenated().to_string(), text);
        assert!(seen.insert(id), "a repeated id {text}");
    }
    for word in [0, 1, 0x0123_4567, 0x89ab_cdef, 0xffff_ffff, 0xa0a0_0909] {
        assert_eq!(
            hex_digits(word).to_vec(),
            format!("{word:08x}").into_bytes()
        );
    }
}

/// Any bytes at all, table names with one byte changed to anything: [`classify`] agrees with
/// the plain reading of the table (a case-insensitive compare against each name), so the fast
/// first-letter dispatch and the branch-free compare cannot drift from it.
#[test]
fn classify_is_the_table_read_plainly_for_any_bytes() {
    use proptest::prelude::*;
    fn plainly(name: &[u8]) -> FieldClass {
        TABLE
            .iter()
            .find(|(known, _)| name.eq_ignore_ascii_case(known.as_bytes()))
            .map_or(FieldClass::EndToEnd, |(_, class)| *class)
    }
    let near_table = (0..TABLE.len(), any::<usize>(), any::<u8>()).prop_map(|(i, at, byte)| {
        let mut name = TABLE[i].0.as_bytes().to_vec();
        let at = at % name.len();
        name[at] = byte;
        name
    });
    let names = prop_oneof![proptest::collection::vec(any::<u8>(), 0..20), near_table];
    proptest!(ProptestConfig::with_cases(4096), |(name in names)| {
        prop_assert_eq!(classify(&name), plainly(&name));
        prop_assert_eq!(is_hop_by_hop(&name), plainly(&name).is_hop_by_hop());
    });
}

/// The upgrade rule as a decision table over every combination of its inputs: the HTTP
/// version, a body or none, the `Connection` values and the `Upgrade` values (each with
/// no field, one field, or more, in different cases). The expected answer is worked out
/// from the rule's statement, row by row, not from the function.
#[test]
fn upgrade_decision_table() {
    // (values, names `upgrade` as an option)
    let connections: [(&[&str], bool); 8] = [
        (&[], false),
        (&["upgrade"], true),
        (&["Upgrade"], true),
        (&["keep-alive, UPGRADE"], true),
        (&["close"], false),
        (&["keep-alive", " upgrade "], true),
        (&["upgrade-insecure"], false),
        (&["x-upgrade, te"], false),
    ];
    // (values, has an h2c token, first protocol when any)
    let upgrades: [(&[&str], bool, Option<UpgradeProtocol>); 9] = [
        (&[], false, None),
        (&[""], false, None),
        (&["websocket"], false, Some(UpgradeProtocol::WebSocket)),
        (&["WebSocket/13"], false, Some(UpgradeProtocol::WebSocket)),
        (&["foo/1, websocket"], false, Some(UpgradeProtocol::Other)),
        (&["h2c"], true, None),
        (&["H2C"], true, None),
        (&["websocket, h2c"], true, None),
        (
            &["irc/6.9", "websocket"],
            false,
            Some(UpgradeProtocol::Other),
        ),
    ];
    let mut rows = 0;
    for http11 in [true, false] {
        for bodiless in [true, false] {
            for (connection, names_upgrade) in connections {
                for (upgrade, h2c, first) in upgrades {
                    let expected = if h2c {
                        UpgradeAsk::H2c
                    } else {
                        match first {
                            Some(protocol) if http11 && bodiless && names_upgrade => {
                                UpgradeAsk::Forward(protocol)
                            }
                            _ => UpgradeAsk::None,
                        }
                    };
                    let got = upgrade_ask(
                        http11,
                        bodiless,
                        connection.iter().map(|v| v.as_bytes()),
                        upgrade.iter().map(|v| v.as_bytes()),
                    );
                    assert_eq!(
                        got, expected,
                        "http11={http11} bodiless={bodiless} connection={connection:?} upgrade={upgrade:?}"
                    );
                    rows += 1;
                }
            }
        }
    }
    assert_eq!(rows, 2 * 2 * 8 * 9);
    // The field itself stays hop-by-hop: a forwarded upgrade is written afresh.
    assert!(is_hop_by_hop(b"Upgrade"));
    assert!(!classify(b"upgrade").may_be_named_by_connection());
}

proptest::proptest! {
    /// Whatever the values, the rule never panics, never forwards h2c, and forwards only
    /// when `Connection` names `upgrade` on a bodiless HTTP/1.1 request.
    #[test]
    fn upgrade_ask_is_closed_under_any_values(
        http11 in proptest::bool::ANY,
        bodiless in proptest::bool::ANY,
        connection in proptest::collection::vec("[ a-zA-Z0-9,/-]{0,24}", 0..3),
        upgrade in proptest::collection::vec("[ a-zA-Z0-9,/-]{0,24}", 0..3),
    ) {
        let got = upgrade_ask(
            http11,
            bodiless,
            connection.iter().map(|v| v.as_bytes()),
            upgrade.iter().map(|v| v.as_bytes()),
        );
        if let UpgradeAsk::Forward(_) = got {
            proptest::prop_assert!(http11 && bodiless);
            proptest::prop_assert!(connection.iter().any(|v| v
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))));
            proptest::prop_assert!(!upgrade.iter().any(|v| v
                .split(',')
                .any(|t| t.trim().split('/').next().unwrap_or("").eq_ignore_ascii_case("h2c"))));
        }
    }
}
