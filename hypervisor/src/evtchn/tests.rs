//! Connections between domains through the locking protocol of [`super::ops`], reset and
//! destroy.

use super::interdomain::{self, Pair, PairError, Side};
use super::ops::{self, EvtchnDomain};
use super::testutil::{FifoGuest, TestDomain};
use super::{Notify, PortState, StatusDetail, stat};
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;
use xen_abi::DomId;
use xen_abi::errno::Errno;
use xen_abi::xen::{DOMID_SELF, VIRQ_DOM_EXC};

/// Domains 1, 2 and 3 (so the local domain may be either the lower or the higher id).
struct World {
    doms: Vec<TestDomain>,
}

impl World {
    fn new() -> Self {
        Self {
            doms: (1..=3).map(|id| TestDomain::with_id(id, 2)).collect(),
        }
    }

    fn dom(&self, id: DomId) -> &TestDomain {
        &self.doms[usize::from(id) - 1]
    }

    fn lookup<'w>(&'w self) -> impl Fn(DomId) -> Option<&'w TestDomain> + 'w {
        |id| self.doms.iter().find(|d| d.id == id)
    }

    /// `dom` offers a port to `to`; `to` binds it. Returns (offered port, bound port).
    fn connect(&self, dom: DomId, to: DomId) -> (u32, u32) {
        let offered = self.dom(dom).table.lock().alloc_unbound(dom, to).unwrap();
        let (bound, _) = ops::bind_interdomain(self.dom(to), self.dom(dom), offered).unwrap();
        (offered, bound)
    }

    fn state(&self, dom: DomId, port: u32) -> PortState {
        self.dom(dom).table.lock().get(port).unwrap().state
    }
}

#[test]
fn binding_connects_both_ends_and_notifies_the_binder() {
    let w = World::new();
    let offered = w.dom(2).table.lock().alloc_unbound(2, 1).unwrap();
    let (bound, notify) = ops::bind_interdomain(w.dom(1), w.dom(2), offered).unwrap();
    assert_eq!(
        notify,
        Notify {
            kick: Some(0),
            poll: Some(bound)
        },
        "Xen raises the new port in case the peer sent while unbound"
    );
    assert!(w.dom(1).pending_2l(bound));
    assert_eq!(
        w.state(1, bound),
        PortState::Interdomain {
            dom: 2,
            port: offered
        }
    );
    assert_eq!(
        w.state(2, offered),
        PortState::Interdomain {
            dom: 1,
            port: bound
        }
    );
    let s = w.dom(2).table.lock().port_status(offered).unwrap();
    assert_eq!(s.status, stat::INTERDOMAIN);
    assert_eq!(
        s.detail,
        StatusDetail::Interdomain {
            dom: 1,
            port: bound
        }
    );
}

#[test]
fn binding_refuses_ports_not_offered_to_the_caller() {
    let w = World::new();
    let for_3 = w.dom(2).table.lock().alloc_unbound(2, 3).unwrap();
    let ipi = w.dom(2).table.lock().bind_ipi(0).unwrap();
    let for_self = w.dom(2).table.lock().alloc_unbound(2, DOMID_SELF).unwrap();
    for port in [for_3, ipi, for_self, 0, 40, 5000] {
        assert_eq!(
            ops::bind_interdomain(w.dom(1), w.dom(2), port),
            Err(Errno::EINVAL),
            "port {port}"
        );
    }
    // The caller's failed attempts leave nothing behind.
    assert!(!w.dom(1).table.lock().has_active());
    // The port offered to 3 is still there for 3.
    assert!(ops::bind_interdomain(w.dom(3), w.dom(2), for_3).is_ok());
    assert_eq!(
        ops::bind_interdomain(w.dom(1), w.dom(2), for_3),
        Err(Errno::EINVAL),
        "already connected"
    );
}

#[test]
fn binding_with_a_full_table_is_enospc_before_anything_else() {
    let w = World::new();
    {
        let mut t = w.dom(1).table.lock();
        while t.alloc_unbound(1, 1).is_ok() {}
    }
    assert_eq!(
        ops::bind_interdomain(w.dom(1), w.dom(2), 9999),
        Err(Errno::ENOSPC)
    );
}

#[test]
fn loopback_binding_takes_one_lock() {
    let w = World::new();
    let d = w.dom(2);
    let a = d.table.lock().alloc_unbound(2, DOMID_SELF).unwrap();
    let (b, _) = ops::bind_interdomain(d, d, a).unwrap();
    assert_eq!(w.state(2, b), PortState::Interdomain { dom: 2, port: a });
    assert_eq!(w.state(2, a), PortState::Interdomain { dom: 2, port: b });
}

#[test]
fn sending_reaches_the_peers_notify_vcpu() {
    let w = World::new();
    let (p2, p1) = w.connect(2, 1);
    w.dom(2).table.lock().bind_vcpu(p2, 1).unwrap();
    let sent = ops::send(w.dom(1), p1, &w.lookup()).unwrap();
    assert_eq!(sent.dom, 2);
    assert_eq!(
        sent.notify,
        Notify {
            kick: Some(1),
            poll: Some(p2)
        }
    );
    assert!(w.dom(2).pending_2l(p2));
    assert_eq!(w.dom(2).selector(1), 1);
    // Back the other way.
    let back = ops::send(w.dom(2), p2, &w.lookup()).unwrap();
    assert_eq!(
        (back.dom, back.notify.poll),
        (1, None),
        "p1 already pending"
    );
}

#[test]
fn send_errors_and_drops() {
    let w = World::new();
    let d = w.dom(1);
    let unbound = d.table.lock().alloc_unbound(1, 2).unwrap();
    let virq = d.table.lock().bind_virq(VIRQ_DOM_EXC, 0).unwrap();
    let pirq = d.table.lock().alloc(PortState::Pirq { pirq: 3 }).unwrap();
    let ipi = d.table.lock().bind_ipi(1).unwrap();
    let lookup = w.lookup();
    assert_eq!(
        ops::send(d, unbound, &lookup).map(|s| s.notify),
        Ok(Notify::NONE)
    );
    assert_eq!(ops::send(d, virq, &lookup), Err(Errno::EINVAL));
    assert_eq!(ops::send(d, pirq, &lookup), Err(Errno::EINVAL));
    assert_eq!(ops::send(d, 0, &lookup), Err(Errno::EINVAL));
    assert_eq!(ops::send(d, 30, &lookup), Err(Errno::EINVAL), "free");
    assert_eq!(ops::send(d, 4000, &lookup), Err(Errno::EINVAL), "invalid");
    let s = ops::send(d, ipi, &lookup).unwrap();
    assert_eq!((s.dom, s.notify.kick), (1, Some(1)));
}

#[test]
fn closing_one_end_offers_the_other_back_to_the_closer() {
    let w = World::new();
    for (dom, to) in [(2, 1), (1, 2)] {
        let (offered, bound) = w.connect(dom, to);
        // The binder closes: the offering domain's port waits for it again.
        ops::close(w.dom(to), bound, &w.lookup()).unwrap();
        assert_eq!(w.state(to, bound), PortState::Free);
        assert_eq!(w.state(dom, offered), PortState::Unbound { remote: to });
        // It can bind again, and this time the offering side closes.
        let (rebound, _) = ops::bind_interdomain(w.dom(to), w.dom(dom), offered).unwrap();
        ops::close(w.dom(dom), offered, &w.lookup()).unwrap();
        assert_eq!(w.state(to, rebound), PortState::Unbound { remote: dom });
        assert_eq!(
            ops::send(w.dom(to), rebound, &w.lookup()).map(|s| s.notify),
            Ok(Notify::NONE)
        );
        assert_eq!(
            ops::close(w.dom(dom), offered, &w.lookup()),
            Err(Errno::EINVAL)
        );
        ops::close(w.dom(to), rebound, &w.lookup()).unwrap();
    }
}

#[test]
fn closing_clears_only_the_closers_pending_state() {
    let w = World::new();
    let (p2, p1) = w.connect(2, 1);
    let _ = ops::send(w.dom(2), p2, &w.lookup()).unwrap();
    assert!(w.dom(1).pending_2l(p1));
    let _ = ops::send(w.dom(1), p1, &w.lookup()).unwrap();
    ops::close(w.dom(1), p1, &w.lookup()).unwrap();
    assert!(!w.dom(1).pending_2l(p1));
    assert!(w.dom(2).pending_2l(p2), "the peer's event stays");
}

#[test]
fn a_pair_without_the_peer_asks_for_it() {
    let w = World::new();
    let (p2, p1) = w.connect(2, 1);
    let d = w.dom(1);
    let mut t = d.table.lock();
    let mut same = Pair::Same(Side {
        id: 1,
        table: &mut t,
        mem: d,
    });
    assert_eq!(
        interdomain::close(&mut same, p1),
        Err(PairError::PeerNotLocked(2))
    );
    assert_eq!(
        interdomain::send(&mut same, p1),
        Err(PairError::PeerNotLocked(2))
    );
    assert_eq!(
        t.get(p1).unwrap().state,
        PortState::Interdomain { dom: 2, port: p2 }
    );
    drop(t);
    // The wrong second domain is the "peer changed meanwhile" case: -EINVAL.
    let mut locked = ops::lock_pair(w.dom(1), w.dom(3));
    assert_eq!(
        interdomain::close(&mut locked.pair(), p1).map_err(PairError::errno),
        Err(Errno::EINVAL)
    );
}

#[test]
fn a_peer_that_vanished_is_handled_as_closed() {
    let w = World::new();
    let (_, p1) = w.connect(2, 1);
    let nobody = |_: DomId| -> Option<&TestDomain> { None };
    assert_eq!(
        ops::send(w.dom(1), p1, &nobody).map(|s| s.notify),
        Ok(Notify::NONE)
    );
    assert_eq!(ops::close(w.dom(1), p1, &nobody), Ok(()));
    assert_eq!(w.state(1, p1), PortState::Free);
}

#[test]
fn the_lock_order_holds_for_both_directions() {
    let w = World::new();
    for (a, b) in [(1, 3), (3, 1)] {
        let locked = ops::lock_pair(w.dom(a), w.dom(b));
        // Both tables are held: neither can be taken again.
        assert!(w.dom(1).table.try_lock().is_none() && w.dom(3).table.try_lock().is_none());
        assert!(w.dom(2).table.try_lock().is_some());
        drop(locked);
    }
}

/// Two threads repeatedly connect, send and close between domains 1 and 2 in opposite
/// directions; with the lock order they cannot deadlock, and the tables stay consistent.
#[test]
fn crossing_operations_in_opposite_directions_do_not_deadlock() {
    use std::sync::Arc;
    let w = Arc::new(World::new());
    let workers: Vec<_> = [(1u16, 2u16), (2, 1)]
        .into_iter()
        .map(|(me, other)| {
            let w = w.clone();
            std::thread::spawn(move || {
                for _ in 0..3000 {
                    let offered = w.dom(other).table.lock().alloc_unbound(other, me).unwrap();
                    let (mine, _) =
                        ops::bind_interdomain(w.dom(me), w.dom(other), offered).unwrap();
                    ops::send(w.dom(me), mine, &w.lookup()).unwrap();
                    ops::send(w.dom(other), offered, &w.lookup()).unwrap();
                    ops::close(w.dom(other), offered, &w.lookup()).unwrap();
                    ops::close(w.dom(me), mine, &w.lookup()).unwrap();
                }
            })
        })
        .collect();
    for t in workers {
        t.join().unwrap();
    }
    for id in [1, 2] {
        assert!(
            !w.dom(id).table.lock().has_active(),
            "domain {id} has ports left"
        );
    }
}

#[test]
fn reset_closes_everything_and_returns_to_2_level() {
    let w = World::new();
    let d = w.dom(1);
    let (p2, _) = w.connect(2, 1);
    {
        let mut t = d.table.lock();
        t.bind_ipi(0).unwrap();
        t.bind_virq(VIRQ_DOM_EXC, 0).unwrap();
        let g = FifoGuest::setup(&mut t, d, 2);
        assert!(t.is_fifo());
        core::mem::forget(g);
    }
    let released = ops::reset(d, false, &w.lookup(), || false).unwrap();
    let mut frames: Vec<u64> = released.iter().map(|m| m.frame()).collect();
    frames.sort_unstable();
    assert_eq!(
        frames,
        vec![100, 101, 1000, 1001],
        "both control blocks, both array pages"
    );
    let t = d.table.lock();
    assert!(!t.is_fifo() && !t.has_active());
    assert_eq!(t.virq_port(0, VIRQ_DOM_EXC), None);
    assert_eq!(
        w.state(2, p2),
        PortState::Unbound { remote: 1 },
        "the peer was unbound"
    );
}

#[test]
fn reset_is_preemptible_and_resumes_where_it_stopped() {
    let w = World::new();
    let d = w.dom(1);
    let ports: Vec<u32> = (0..200)
        .map(|_| d.table.lock().bind_ipi(0).unwrap())
        .collect();
    let mut asked = 0;
    let preempt = || {
        asked += 1;
        asked == 2
    };
    assert_eq!(
        ops::reset(d, false, &w.lookup(), preempt).map(|_| ()),
        Err(Errno::ERESTART)
    );
    assert_eq!(asked, 2, "asked at ports 64 and 128");
    assert!(d.table.lock().has_active());
    assert_eq!(
        ops::reset(d, false, &w.lookup(), || false).map(|_| ()),
        Err(Errno::EBUSY),
        "a fresh reset while one is pending"
    );
    assert_eq!(
        ops::reset(d, true, &w.lookup(), || false).map(|v| v.len()),
        Ok(0)
    );
    assert!(ports.iter().all(|&p| w.state(1, p) == PortState::Free));
}

#[test]
fn reset_reports_ports_bound_behind_its_back() {
    let w = World::new();
    let d = w.dom(1);
    for _ in 0..70 {
        d.table.lock().bind_ipi(0).unwrap();
    }
    // When asked about preemption at port 64, another vCPU binds a port below it.
    let mut once = true;
    let preempt = || {
        if once {
            once = false;
            d.table.lock().bind_ipi(0).unwrap();
        }
        false
    };
    assert_eq!(
        ops::reset(d, false, &w.lookup(), preempt).map(|_| ()),
        Err(Errno::EAGAIN)
    );
    assert_eq!(
        ops::reset(d, false, &w.lookup(), || false).map(|_| ()),
        Ok(())
    );
}

#[test]
fn destroy_unbinds_the_peers_and_drops_fifo() {
    let w = World::new();
    let (p2, _) = w.connect(2, 1);
    let (_, p3) = w.connect(1, 3);
    let d = w.dom(1);
    {
        let mut t = d.table.lock();
        core::mem::forget(FifoGuest::setup(&mut t, d, 1));
    }
    let pages = ops::destroy(d, &w.lookup());
    assert_eq!(pages.len(), 3);
    assert!(!d.table.lock().has_active() && !d.table.lock().is_fifo());
    assert_eq!(w.state(2, p2), PortState::Unbound { remote: 1 });
    assert_eq!(w.state(3, p3), PortState::Unbound { remote: 1 });
}

#[test]
fn fifo_and_2_level_domains_talk_to_each_other() {
    let w = World::new();
    let fifo_dom = w.dom(2);
    let mut g = {
        let mut t = fifo_dom.table.lock();
        FifoGuest::setup(&mut t, fifo_dom, 1)
    };
    let (p2, p1) = w.connect(2, 1);
    fifo_dom.clear_upcall(0);
    let sent = ops::send(w.dom(1), p1, &w.lookup()).unwrap();
    assert_eq!(sent.notify.kick, Some(0));
    assert_eq!(g.drain(0), vec![p2]);
    let back = ops::send(fifo_dom, p2, &w.lookup()).unwrap();
    assert_eq!(back.dom, 1);
    assert!(w.dom(1).pending_2l(p1));
    assert_eq!(g.ready(0).load(Ordering::SeqCst), 0);
}

/// What the pieces look like from the hypercall layer: `EvtchnDomain` is all it implements.
#[test]
fn evtchn_domain_is_enough_for_every_op() {
    fn check<D: EvtchnDomain>(_: &D) {}
    check(&TestDomain::new(1));
}
