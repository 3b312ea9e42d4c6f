//! Host tests of the page-type system against a fake frame table.
//!
//! Machine layout of [`FakeEnv`] (320 frames with frame-table entries):
//!
//! | MFNs | owner |
//! | --- | --- |
//! | 0..16 | `DOMID_IO` (like the first MiB), typed writable by their own reference |
//! | 16..20 | hypervisor-private (count 0: no reference can be taken) |
//! | 20..24 | `DOMID_XEN`, shared read-only (like the read-only M2P) |
//! | 24..32 | free |
//! | 32..128 | dom0 (I/O resources, hardware domain, `iomem` access everywhere) |
//! | 128..224 | dom1 (plain domU; may be mapped by dom0 through `xsm_priv_mapping`) |
//! | 224..320 | dom2 (plain domU, `m2p_strict`) |
//! | 320.. | no frame-table entry: MMIO |

mod basic;
mod desc_tests;
mod grant_tests;
mod l1_rules;
mod linear;
mod random;

use super::*;
pub(super) use std::vec;
pub(super) use std::vec::Vec;
pub(super) use xen_abi::errno::Errno;

pub(super) const NR_FRAMES: u64 = 320;
pub(super) const DOM0: DomId = 0;
pub(super) const DOM1: DomId = 1;
pub(super) const DOM2: DomId = 2;
pub(super) const XEN_PRIVATE: Mfn = 16;
pub(super) const RO_M2P: Mfn = 20;
pub(super) const FREE_FRAME: Mfn = 24;
pub(super) const MMIO: Mfn = 400;

pub(super) const P: u64 = 1;
pub(super) const RW: u64 = 2;
pub(super) const U: u64 = 4;
pub(super) const PWT: u64 = 8;
pub(super) const PCD: u64 = 0x10;
pub(super) const A: u64 = 0x20;
pub(super) const D: u64 = 0x40;
pub(super) const PSE: u64 = 0x80;
pub(super) const G: u64 = 0x100;
pub(super) const NX: u64 = 1 << 63;

/// First frame of domain `d`.
pub(super) const fn dom_base(d: DomId) -> Mfn {
    32 + d as Mfn * 96
}

/// An entry mapping `mfn` with `flags`.
pub(super) const fn pte(mfn: Mfn, flags: u64) -> u64 {
    (mfn << 12) | flags
}

/// The fake hypervisor: frame table, memory and policy.
pub(super) struct FakeEnv {
    pub pages: Vec<PageInfo>,
    pub mem: Vec<[u64; 512]>,
    pub policies: [DomainPolicy; 3],
    pub mmio_ro: Vec<Mfn>,
    pub priv_pairs: Vec<(DomId, DomId)>,
    pub linear_pt: bool,
    pub mmio_relax: MmioRelax,
    pub self_snoop: bool,
    pub cache_flushes: Vec<Mfn>,
    pub tlb_flushes: usize,
    pub released: Vec<Mfn>,
}

impl FakeEnv {
    pub fn new() -> Self {
        let mut pages = vec![PageInfo::FREE; NR_FRAMES as usize];
        for (mfn, pg) in pages.iter_mut().enumerate() {
            let mfn = mfn as Mfn;
            *pg = match mfn {
                0..16 => PageInfo::io(),
                16..20 => PageInfo::FREE,
                20..24 => PageInfo::xen_shared(DOMID_XEN, false),
                24..32 => PageInfo::FREE,
                _ => PageInfo::assigned(((mfn - 32) / 96) as DomId),
            };
        }
        let dom0 = DomainPolicy {
            has_io_resources: true,
            hardware_domain: true,
            ..DomainPolicy::default()
        };
        let dom2 = DomainPolicy {
            m2p_strict: true,
            ..DomainPolicy::default()
        };
        FakeEnv {
            pages,
            mem: vec![[0; 512]; NR_FRAMES as usize],
            policies: [dom0, DomainPolicy::default(), dom2],
            mmio_ro: Vec::new(),
            priv_pairs: vec![(DOM0, DOM1)],
            linear_pt: true,
            mmio_relax: MmioRelax::Off,
            self_snoop: true,
            cache_flushes: Vec::new(),
            tlb_flushes: 0,
            released: Vec::new(),
        }
    }

    pub fn pg(&self, mfn: Mfn) -> PageInfo {
        self.pages[mfn as usize]
    }

    pub fn get(&self, mfn: Mfn, i: usize) -> u64 {
        self.mem[mfn as usize][i]
    }

    pub fn set(&mut self, mfn: Mfn, i: usize, v: u64) {
        self.mem[mfn as usize][i] = v;
    }

    /// (general count, type count, linear count, pinned) of every frame.
    pub fn counts(&self) -> Vec<(u64, u64, i16, bool)> {
        self.pages
            .iter()
            .map(|p| (p.count(), p.type_count(), p.linear_pt_count, p.is_pinned()))
            .collect()
    }

    /// The fake hypervisor L4 entries. They point at real hypervisor frames, so that
    /// treating them as guest entries would corrupt those frames' counts.
    pub fn xen_slot_value(l4: Mfn, dom: DomId, slot: usize, ro_mpt: bool) -> u64 {
        match slot {
            RO_MPT_SLOT if ro_mpt => pte(RO_M2P, P | A | U),
            RO_MPT_SLOT => 0,
            258 => pte(l4, P | RW | A | D),
            260 => pte(XEN_PRIVATE + 1 + dom as Mfn % 2, P | RW | A | D),
            _ => pte(RO_M2P + 1 + slot as Mfn % 3, P | RW | A | D),
        }
    }
}

impl FrameEnv for FakeEnv {
    fn page(&self, mfn: Mfn) -> Option<&PageInfo> {
        self.pages.get(usize::try_from(mfn).ok()?)
    }

    fn page_mut(&mut self, mfn: Mfn) -> Option<&mut PageInfo> {
        self.pages.get_mut(usize::try_from(mfn).ok()?)
    }

    fn read_entry(&self, mfn: Mfn, index: usize) -> u64 {
        assert!(mfn < NR_FRAMES && index < 512, "read of {mfn:#x}[{index}]");
        self.mem[mfn as usize][index]
    }

    fn write_entry(&mut self, mfn: Mfn, index: usize, val: u64) {
        assert!(mfn < NR_FRAMES && index < 512, "write of {mfn:#x}[{index}]");
        self.mem[mfn as usize][index] = val;
    }

    fn xen_l4_slot(&self, l4: Mfn, dom: DomId, slot: usize, ro_mpt: bool) -> u64 {
        assert!((256..=271).contains(&slot));
        Self::xen_slot_value(l4, dom, slot, ro_mpt)
    }

    fn policy(&self, dom: DomId) -> DomainPolicy {
        self.policies.get(dom as usize).copied().unwrap_or_default()
    }

    fn iomem_access_permitted(&self, dom: DomId, _mfn: Mfn) -> bool {
        dom == DOM0
    }

    fn is_mmio_ro(&self, mfn: Mfn) -> bool {
        self.mmio_ro.contains(&mfn)
    }

    fn priv_mapping_allowed(&self, src: DomId, target: DomId) -> bool {
        self.priv_pairs.contains(&(src, target))
    }

    fn opt_pv_linear_pt(&self) -> bool {
        self.linear_pt
    }

    fn opt_mmio_relax(&self) -> MmioRelax {
        self.mmio_relax
    }

    fn cpu_self_snoop(&self) -> bool {
        self.self_snoop
    }

    fn flush_cache(&mut self, mfn: Mfn) {
        self.cache_flushes.push(mfn);
    }

    fn flush_tlb_for_type_change(&mut self, _mfn: Mfn, _owner: DomId) {
        self.tlb_flushes += 1;
    }

    fn page_released(&mut self, mfn: Mfn) {
        self.released.push(mfn);
    }
}

/// A small valid tree of domain `d`: L4 → L3 → L2 → L1 → data.
pub(super) struct Tree {
    pub l4: Mfn,
    pub l3: Mfn,
    pub l2: Mfn,
    pub l1: Mfn,
    /// Mapped writable (kernel mapping).
    pub rw: Mfn,
    /// Mapped read-only (user mapping).
    pub ro: Mfn,
}

/// Builds a [`Tree`] in frames `first..first + 6` of domain `d` (not yet validated). The L4
/// uses slots 0 and 511 (both guest slots) for the same L3, and the L1 also maps itself
/// read-only.
pub(super) fn build_tree(env: &mut FakeEnv, first: Mfn) -> Tree {
    let t = Tree {
        l4: first,
        l3: first + 1,
        l2: first + 2,
        l1: first + 3,
        rw: first + 4,
        ro: first + 5,
    };
    env.set(t.l4, 0, pte(t.l3, P | RW));
    env.set(t.l4, 511, pte(t.l3, P | RW | U));
    env.set(t.l3, 0, pte(t.l2, P | RW));
    env.set(t.l2, 0, pte(t.l1, P | RW));
    env.set(t.l1, 0, pte(t.rw, P | RW));
    env.set(t.l1, 1, pte(t.ro, P | U));
    env.set(t.l1, 2, pte(t.l1, P));
    t
}

/// Checks the reference-count invariants of the whole frame table against the table
/// contents, independently of how the counts were reached:
///
/// * every frame's general count = its initial count + pins + `roots` + present entries of
///   validated tables that map it (I/O frames excepted);
/// * every frame's type count = its initial type count + pins + `roots` + writable L1
///   entries and L2..L4 entries of validated tables that map it (self-maps excepted);
/// * targets have the type the entry needs (writable, the next level, or the same level for
///   a linear entry, which must be read-only and whose target is validated);
/// * `linear_pt_count` = linear entries − linear uses, never both;
/// * a page-table type with a non-zero count is validated.
///
/// `roots` are references the test holds directly (base pointers, GDT frames).
pub(super) fn check_invariants(env: &FakeEnv, init: &[PageInfo], roots: &[Mfn]) {
    let n = env.pages.len();
    let mut general: Vec<i64> = init.iter().map(|p| p.count() as i64).collect();
    let mut typed: Vec<i64> = init.iter().map(|p| p.type_count() as i64).collect();
    let mut entries = vec![0i64; n];
    let mut uses = vec![0i64; n];
    for &r in roots {
        general[r as usize] += 1;
        typed[r as usize] += 1;
    }
    for (m, pg) in env.pages.iter().enumerate() {
        if pg.is_pinned() {
            general[m] += 1;
            typed[m] += 1;
        }
    }
    for (t, pg) in env.pages.iter().enumerate() {
        let Some(level) = pg.page_type().level() else {
            continue;
        };
        if !pg.is_validated() {
            assert_eq!(pg.type_count(), 0, "unvalidated table {t:#x} has type refs");
            assert!(!pg.is_pinned(), "unvalidated table {t:#x} pinned");
            continue;
        }
        if pg.type_count() == 0 {
            // Validated page tables are devalidated when their count drops to zero.
            panic!("validated table {t:#x} with no type refs");
        }
        for i in 0..512 {
            if level == Level::L4 && !is_guest_l4_slot(i) {
                continue;
            }
            let e = env.mem[t][i];
            if e & P == 0 {
                continue;
            }
            let m = entry_mfn(e) as usize;
            if level == Level::L1 {
                if m >= n || env.pages[m].owner == DOMID_IO {
                    continue;
                }
                general[m] += 1;
                if e & RW != 0 {
                    typed[m] += 1;
                    assert_eq!(
                        env.pages[m].page_type(),
                        PageType::Writable,
                        "{t:#x}[{i}] -> {m:#x}"
                    );
                }
                continue;
            }
            if m == t {
                assert_eq!(e & RW, 0, "writable self-map in {t:#x}[{i}]");
                continue;
            }
            assert!(m < n, "{t:#x}[{i}] maps invalid {m:#x}");
            general[m] += 1;
            typed[m] += 1;
            let tt = env.pages[m].page_type();
            assert!(
                env.pages[m].is_validated(),
                "{t:#x}[{i}] -> unvalidated {m:#x}"
            );
            if tt == level.page_type() {
                assert_eq!(e & RW, 0, "writable linear entry {t:#x}[{i}]");
                entries[t] += 1;
                uses[m] += 1;
            } else {
                assert_eq!(
                    Some(tt),
                    level.lower().map(Level::page_type),
                    "{t:#x}[{i}] -> {m:#x}"
                );
            }
        }
    }
    for m in 0..n {
        let pg = env.pages[m];
        assert_eq!(
            pg.count() as i64,
            general[m],
            "general count of {m:#x}: {pg:?}"
        );
        assert_eq!(
            pg.type_count() as i64,
            typed[m],
            "type count of {m:#x}: {pg:?}"
        );
        assert!(
            entries[m] == 0 || uses[m] == 0,
            "{m:#x} both has and is a linear entry"
        );
        assert_eq!(
            pg.linear_pt_count as i64,
            entries[m] - uses[m],
            "linear count of {m:#x}"
        );
    }
}
