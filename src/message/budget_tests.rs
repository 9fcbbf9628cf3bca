use super::*;

fn budget(limit: usize) -> Arc<Budget> {
    Budget::new(limit, Gauge::noop())
}

#[test]
fn holds_up_to_the_limit_and_gives_back_on_drop() {
    let budget = budget(100);
    let a = budget.try_hold(60).unwrap();
    assert!(budget.try_hold(41).is_none(), "60 + 41 is over 100");
    let b = budget.try_hold(40).unwrap();
    assert_eq!(budget.used(), 100);
    assert!(budget.try_hold(1).is_none());
    drop(a);
    assert_eq!(budget.used(), 40);
    let c = budget.try_hold(60).unwrap();
    drop((b, c));
    assert_eq!(budget.used(), 0);
}

#[test]
fn zero_bytes_always_fit_and_a_clone_gives_nothing_back() {
    let budget = budget(10);
    let full = budget.try_hold(10).unwrap();
    let empty = budget.try_hold(0).unwrap();
    assert_eq!(budget.used(), 10);
    let copy = full.clone();
    drop(copy);
    assert_eq!(budget.used(), 10, "the clone held nothing");
    drop((empty, full));
    assert_eq!(budget.used(), 0);
}

#[test]
fn a_held_grows_while_it_fits_and_gives_everything_back_once() {
    let budget = budget(100);
    let mut growing = Held::nothing();
    assert!(growing.try_grow(&budget, 0), "zero bytes touch nothing");
    assert_eq!(budget.used(), 0);
    assert!(growing.try_grow(&budget, 40));
    assert!(growing.try_grow(&budget, 50));
    let other = budget.try_hold(10).unwrap();
    assert!(!growing.try_grow(&budget, 1), "100 of 100 are held");
    assert_eq!((growing.bytes(), budget.used()), (90, 100));
    drop(other);
    drop(growing);
    assert_eq!(budget.used(), 0);
}

#[test]
fn a_keeper_holds_as_it_reads_and_digests_past_the_cap_or_the_budget() {
    let budget = budget(10);
    let mut keeper = Keeper::new(6, &budget);
    keeper.keep(b"abcd");
    assert_eq!(budget.used(), 4, "held while it is read");
    keeper.keep(b"ef");
    let kept = keeper.finish();
    assert_eq!(
        (
            &kept.body[..],
            kept.truncated,
            kept.over_budget,
            kept.digest
        ),
        (&b"abcdef"[..], false, false, None)
    );
    assert_eq!(budget.used(), 6);

    let mut long = Keeper::new(6, &budget);
    long.keep(b"abcd");
    long.keep(b"efgh");
    long.keep(b"ij");
    assert_eq!(budget.used(), 6, "past the cap nothing is held");
    let long = long.finish();
    assert!(long.truncated && !long.over_budget && long.body.is_empty());
    assert_eq!(long.digest, Some(BodyDigest::of(b"abcdefghij")));

    let mut other = Keeper::new(100, &budget);
    other.keep(b"123");
    other.keep(b"45");
    assert_eq!(budget.used(), 6, "6 + 3 + 2 is over 10: given back");
    other.keep(b"6");
    let stopped = other.finish();
    assert!(stopped.over_budget && stopped.body.is_empty() && !stopped.truncated);
    assert_eq!(stopped.digest, Some(BodyDigest::of(b"123456")));
    drop(kept);
    assert_eq!(budget.used(), 0);
}

#[test]
fn past_the_cap_a_bounded_keeper_stops_once_the_body_is_longer_than_its_bound() {
    let budget = budget(100);
    let bound = || Some(5);
    let mut keeper = Keeper::new(4, &budget).bounded_by(&bound);
    assert!(keeper.keep(b"abcd"), "kept: within the cap");
    assert!(keeper.keep(b"e"), "5 bytes are not longer than 5");
    assert!(!keeper.keep(b"f"), "6 are: reading on settles nothing");
    assert!(!keeper.keep(b"g"));
    let kept = keeper.finish();
    assert!(kept.cut_short && kept.truncated);
    assert_eq!(kept.digest, Some(BodyDigest::of(b"abcdef")));

    let unknown = || None;
    let mut keeper = Keeper::new(4, &budget).bounded_by(&unknown);
    for _ in 0..10 {
        assert!(keeper.keep(b"abcd"), "no bound known yet: read on");
    }
    assert!(!keeper.finish().cut_short);
}

#[test]
fn a_body_larger_than_the_whole_budget_never_fits() {
    let budget = budget(10);
    assert!(budget.try_hold(11).is_none());
    assert!(budget.try_hold(usize::MAX).is_none(), "no overflow");
    assert_eq!(budget.used(), 0);
}
