//! Fuzz-style tests of the xenstore request handler (bounded, deterministic, run by
//! `cargo test`): random requests (known and unknown types, random paths, values, NULs,
//! transaction ids and payloads up to the maximum) against a domain's store. The handler must
//! answer every request and never panic; the reply echoes the request id.

use super::{Message, PAYLOAD_MAX, Store};
use crate::fuzz_rng::{Rng, iters};

const PARTS: &[&str] = &[
    "",
    "/",
    "//",
    "local",
    "domain",
    "0",
    "1",
    "7",
    "65535",
    "device",
    "vif",
    "memory",
    "target",
    "name",
    "control",
    "shutdown",
    "..",
    ".",
    "@introduceDomain",
    "@releaseDomain",
    "\0",
    "a\0b",
    "\u{fffd}",
    "very-long-component-name-very-long-component-name",
];

fn random_payload(r: &mut Rng) -> Vec<u8> {
    match r.below(4) {
        0 => {
            let n = r.below(PAYLOAD_MAX + 64);
            (0..n).map(|_| r.next() as u8).collect()
        }
        _ => {
            let mut p = Vec::new();
            for _ in 0..1 + r.below(3) {
                if r.below(3) != 0 {
                    p.push(b'/');
                }
                for _ in 0..r.below(8) {
                    p.extend_from_slice(PARTS[r.below(PARTS.len())].as_bytes());
                    p.push(b'/');
                }
                if r.below(4) != 0 {
                    p.pop();
                }
                if r.below(2) == 0 {
                    p.push(0);
                }
            }
            if r.below(8) == 0 {
                p.resize(PAYLOAD_MAX + r.below(8), b'x');
            }
            p
        }
    }
}

#[test]
fn random_requests_through_the_store() {
    let mut r = Rng(0x5707_0001);
    let mut stores = [
        Store::for_domain(1, "fuzz", 32 * 1024, 1),
        Store::for_domain(7, "", 0, 0),
    ];
    for _ in 0..iters() {
        let req = Message {
            kind: if r.below(8) == 0 {
                r.next() as u32
            } else {
                r.below(32) as u32
            },
            req_id: r.next() as u32,
            tx_id: [0, 1, 2, r.next() as u32][r.below(4)],
            payload: random_payload(&mut r),
        };
        let s = r.below(stores.len());
        let out = stores[s].handle(&req);
        // The wire form of every message stays parseable.
        for m in &out {
            let b = m.to_bytes();
            let (_, _, _, len) = Message::header(&b).expect("header");
            assert_eq!(len, m.payload.len());
        }
        assert!(
            out.iter().any(|m| m.req_id == req.req_id) || out.is_empty(),
            "no reply echoes the request id"
        );
    }
}
