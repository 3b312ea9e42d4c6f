//! `GNTTABOP_transfer`.

use super::fake::FakeHost;
use super::*;
use crate::gnttab::flags::Header;
use crate::gnttab::ops::setup::set_version;
use crate::gnttab::ops::transfer::transfer;
use xen_abi::grant_table::*;

/// The receiver (domain 1, "granter" of the accepting entry) offers `gref` to the sender
/// (domain 2) for a frame it will know as `gfn`.
fn accept(host: &FakeHost, gref: GrantRef, gfn: u64) {
    let g = guest(host, GRANTER);
    g.write_entry(
        g.locs(gref),
        Header {
            flags: GTF_accept_transfer,
            domid: MAPPER,
        },
        gfn,
    );
}

fn send(host: &FakeHost, mfn: u64, to: DomId, gref: GrantRef) -> i16 {
    let mut op = GnttabTransfer {
        mfn,
        domid: to,
        ref_: gref,
        ..Default::default()
    };
    transfer(host, MAPPER, &mut op);
    op.status
}

#[test]
fn frame_moves_to_the_receiver() {
    let (host, _, m) = two_domains();
    accept(&host, 3, 0x77);
    host.fill(m[1], 0, b"moving");
    assert_eq!(send(&host, m[1], GRANTER, 3), GNTST_okay);
    assert_eq!(host.frame(m[1]).owner, Some(GRANTER));
    assert_eq!(host.m2p.borrow()[&m[1]], 0x77);
    let gst = guest(&host, GRANTER);
    assert_eq!(
        gst.header(3).flags,
        GTF_accept_transfer | GTF_transfer_committed | GTF_transfer_completed
    );
    // A PV receiver is told the machine frame.
    assert_eq!(u64::from(host.raw_u32(gst.locs(3).header.add(4))), m[1]);
    assert_eq!(host.bytes(m[1], 0, 6), b"moving");
    assert_eq!(host.doms.borrow()[&MAPPER].tot_pages, 3);
    assert_eq!(host.doms.borrow()[&GRANTER].tot_pages, 9);
}

#[test]
fn version_2_receiver_gets_a_64_bit_frame() {
    let (host, _, m) = two_domains();
    assert_eq!(set_version(&host, GRANTER, 2).result, Ok(()));
    accept(&host, 3, 0x1_2345_6789);
    assert_eq!(send(&host, m[0], GRANTER, 3), GNTST_okay);
    let gst = guest(&host, GRANTER);
    assert_eq!(host.raw_u64(gst.locs(3).header.add(8)), m[0]);
    assert_eq!(host.m2p.borrow()[&m[0]], 0x1_2345_6789);
}

#[test]
fn sender_side_failures() {
    let (host, g, m) = two_domains();
    accept(&host, 3, 0x77);
    // Not a frame; not the sender's; still referenced (mapped somewhere).
    assert_eq!(send(&host, 0xdead_beef, GRANTER, 3), GNTST_bad_page);
    assert_eq!(send(&host, g[0], GRANTER, 3), GNTST_bad_page);
    crate::gnttab::GrantHost::get_page(&host, m[2], MAPPER);
    assert_eq!(send(&host, m[2], GRANTER, 3), GNTST_bad_page);
    assert_eq!(host.frame(m[2]).owner, Some(MAPPER));
    // Nothing happened to the receiver's entry.
    assert_eq!(guest(&host, GRANTER).header(3).flags, GTF_accept_transfer);
}

#[test]
fn receiver_side_failures_lose_the_frame() {
    let (host, _, m) = two_domains();
    // Unknown receiver: the frame is already gone from the sender and is freed (Xen's order).
    assert_eq!(send(&host, m[0], 9, 3), GNTST_bad_domain);
    assert!(host.frame(m[0]).freed);
    // Entry not accepting, accepting from someone else, beyond the table.
    assert_eq!(send(&host, m[1], GRANTER, 3), GNTST_general_error);
    let gst = guest(&host, GRANTER);
    gst.write_entry(
        gst.locs(4),
        Header {
            flags: GTF_accept_transfer,
            domid: 5,
        },
        0,
    );
    assert_eq!(send(&host, m[2], GRANTER, 4), GNTST_general_error);
    assert_eq!(send(&host, m[3], GRANTER, 512), GNTST_general_error);
    assert!([m[1], m[2], m[3]].iter().all(|&f| host.frame(f).freed));
    // The failed reservations were given back.
    assert_eq!(host.doms.borrow()[&GRANTER].tot_pages, 8);
}

#[test]
fn receiver_without_room_or_dying() {
    let (host, _, m) = two_domains();
    accept(&host, 3, 1);
    host.doms.borrow_mut().get_mut(&GRANTER).unwrap().max_pages = 8;
    assert_eq!(send(&host, m[0], GRANTER, 3), GNTST_general_error);
    host.doms.borrow_mut().get_mut(&GRANTER).unwrap().max_pages = 100;
    host.set_dying(GRANTER);
    assert_eq!(send(&host, m[1], GRANTER, 3), GNTST_general_error);
    // The entry was never committed.
    assert_eq!(guest(&host, GRANTER).header(3).flags, GTF_accept_transfer);
}

#[test]
fn frames_above_what_v1_can_name_need_a_lower_copy() {
    let (host, _, _) = two_domains();
    let high: u64 = 1 << 32;
    host.add_frame(high, Some(MAPPER));
    host.add_frame(high + 1, Some(MAPPER));
    accept(&host, 3, 1);
    assert_eq!(send(&host, high, GRANTER, 3), GNTST_address_too_big);
    host.relocate_to.set(Some(0x5000));
    accept(&host, 4, 2);
    assert_eq!(send(&host, high + 1, GRANTER, 4), GNTST_okay);
    assert_eq!(host.frame(0x5000).owner, Some(GRANTER));
}
