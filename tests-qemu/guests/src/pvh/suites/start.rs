//! `start`: `struct hvm_start_info` as the PVH dom0 builder fills it, or as libxl fills it
//! for a PVH domU: version 1 with the memory map, no flags; both with ACPI tables (RSDP).

use crate::hypercall::op;
use crate::suites::Env;
use crate::verdict::{Hex, Rc, Suite};
use xen_abi::hvm_start_info::{XEN_HVM_MEMMAP_TYPE_RAM, XEN_HVM_START_MAGIC_VALUE};
use xen_abi::hypercall as nr;
use xen_abi::memory::{E820Entry, XENMEM_memory_map, XenMemoryMap};
use xen_abi::xen::GuestHandle;

/// Most memory-map entries read.
const MAP_MAX: usize = 64;

/// `XENMEM_memory_map` into `buf`: (rc, entries).
fn memory_map(buf: &mut [E820Entry]) -> (i64, usize) {
    let mut map = XenMemoryMap {
        nr_entries: buf.len() as u32,
        _pad0: 0,
        buffer: GuestHandle(buf.as_mut_ptr() as u64),
    };
    // SAFETY: the buffer holds `nr_entries` entries.
    let rc = unsafe { op(nr::memory_op, XENMEM_memory_map, &mut map) };
    (rc, (map.nr_entries as usize).min(buf.len()))
}

unsafe extern "C" {
    /// The image's first and last (page-aligned) addresses, from `pvhtest.ld`.
    static __pvhtest_start: u8;
    static __pvhtest_end: u8;
}

pub fn run(s: &mut Suite, env: &Env) {
    let si = env.boot.info();
    s.expect_eq(
        "magic",
        "magic",
        Hex(u64::from(si.magic)),
        Hex(u64::from(XEN_HVM_START_MAGIC_VALUE)),
    );
    // dom0: Xen 4.17's version 0 and SIF_PRIVILEGED | SIF_INITDOMAIN; a domU: version 1.
    let (version, flags) = if env.domu { (1, 0) } else { (0, 3) };
    s.expect_eq("version", "version", si.version, version);
    s.expect_eq("flags", "flags", Hex(u64::from(si.flags)), Hex(flags));
    s.expect_eq("nr_modules", "nr_modules", si.nr_modules, 0);

    let cmdline = env.boot.cmdline();
    let has_suites = cmdline
        .split(|b| b.is_ascii_whitespace())
        .any(|w| w.starts_with(b"suites="));
    s.check(
        "cmdline",
        si.cmdline_paddr != 0 && has_suites,
        format_args!("present={} suites_word={has_suites}", si.cmdline_paddr != 0),
    );

    // Xen 4.17 passes start_info version 0 (no memory map in it): dom0 asks
    // XENMEM_memory_map, as Linux does then.
    let mut buf = [E820Entry::default(); MAP_MAX];
    let (source, map) = match env.boot.memmap() {
        [] => {
            let (rc, n) = memory_map(&mut buf);
            s.check(
                "memory_map",
                rc == 0 && n > 0,
                format_args!("rc={} entries_nonzero={}", Rc(rc), n > 0),
            );
            ("memory_op", &buf[..n])
        }
        m => {
            for (b, e) in buf.iter_mut().zip(m) {
                *b = E820Entry {
                    addr: e.addr,
                    size: e.size,
                    type_: e.type_,
                };
            }
            ("start_info", &buf[..m.len().min(MAP_MAX)])
        }
    };
    let start = (&raw const __pvhtest_start) as u64;
    let end = (&raw const __pvhtest_end) as u64;
    let covers = |lo: u64, hi: u64| {
        map.iter().any(|e| {
            let (addr, size, ty) = (e.addr, e.size, e.type_);
            ty == XEN_HVM_MEMMAP_TYPE_RAM && addr <= lo && hi <= addr.saturating_add(size)
        })
    };
    s.check(
        "memmap.image_in_ram",
        covers(start, end),
        format_args!("source={source} covers_image={}", covers(start, end)),
    );
    let si_end = env.boot.paddr + core::mem::size_of_val(si) as u64;
    s.check(
        "memmap.start_info_in_ram",
        covers(env.boot.paddr, si_end),
        format_args!("covered={}", covers(env.boot.paddr, si_end)),
    );
    let sorted = map.windows(2).all(|w| {
        let (a, n, b) = (w[0].addr, w[0].size, w[1].addr);
        a + n <= b
    });
    s.check("memmap.sorted", sorted, format_args!("sorted={sorted}"));

    // A domU gets ACPI tables too (libxl's PVH default: a MADT for its local APICs).
    let rsdp = si.rsdp_paddr;
    // SAFETY: only read when the hypervisor gave an address (identity-mapped guest memory).
    let sig = (rsdp != 0).then(|| unsafe { (rsdp as *const [u8; 8]).read_unaligned() });
    let ok = sig == Some(*b"RSD PTR ");
    s.check(
        "rsdp",
        ok,
        format_args!("present={} signature_ok={ok}", rsdp != 0),
    );
}
