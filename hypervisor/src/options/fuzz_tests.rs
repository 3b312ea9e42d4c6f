//! Fuzz-style tests of the command-line option parser (bounded, deterministic, run by
//! `cargo test`): random byte strings (lossily made UTF-8) and random sequences of known
//! option names with edge-case values, through `cook_cmdline` and `parse`. Neither may panic.

use super::{cook_cmdline, parse};
use crate::fuzz_rng::{Rng, iters};

const NAMES: &[&str] = &[
    "console",
    "com1",
    "com2",
    "dom0_mem",
    "dom0_max_vcpus",
    "dom0_vcpus_pin",
    "noreboot",
    "loglvl",
    "guest_loglvl",
    "conring_size",
    "sched",
    "sched_credit_tslice_ms",
    "gnttab_max_frames",
    "gnttab_max_maptrack_frames",
    "max_domus",
    "sync_console",
    "no-",
    "debug",
    "dom0",
    "dom0-iommu",
    "watchdog",
    "",
    "=",
    "x",
];
const VALUES: &[&str] = &[
    "",
    "0",
    "1",
    "-1",
    "256M",
    "4G",
    "99999999999999999999999T",
    "min:1M,max:2G",
    "max:",
    "1-2",
    "all",
    "com1,vga",
    "115200,8n1",
    "115200,8n1,0x3f8,4",
    "0x",
    "0xffffffffffffffffff",
    "k",
    "16384k",
    "on",
    "off",
    "true",
    "no",
    "warning/all",
    ",,,",
    "=",
    "1,2,3,4,5,6,7,8",
    "\u{fffd}",
    "\0",
];

#[test]
fn random_bytes_through_the_option_parser() {
    let mut r = Rng(0x0b7_0001);
    for _ in 0..iters() {
        let n = r.below(200);
        let bytes: Vec<u8> = (0..n).map(|_| r.next() as u8).collect();
        let s = String::from_utf8_lossy(&bytes);
        let cooked = cook_cmdline(&s, None);
        let _ = parse(cooked);
        let _ = parse(&s);
    }
}

#[test]
fn random_options_through_the_option_parser() {
    let mut r = Rng(0x0b7_0002);
    for _ in 0..iters() {
        let mut s = String::new();
        for _ in 0..r.below(12) {
            let name = r.pick(NAMES);
            s.push_str(name);
            if r.below(4) != 0 {
                s.push('=');
                s.push_str(r.pick(VALUES));
            }
            s.push([' ', ' ', '\t', ','][r.below(4)]);
        }
        let loader = [None, Some("GRUB 2.06"), Some("")][r.below(3)];
        let cooked = cook_cmdline(&s, loader);
        let (opts, diags) = parse(cooked);
        let _ = opts.effective_conring_size(1 + r.below(64) as u32);
        let _ = diags.len();
    }
}
