//! A fake [`GrantHost`] for host tests: guest memory in boxes, a frame table with Xen-style
//! general and writable-type counts, PV host mappings as a map, and *hooks* that run guest
//! code right before a chosen hypervisor access to shared memory (to model a guest on another
//! CPU racing the hypervisor).
//!
//! The fake also checks the grant code's lock discipline: at most one grant table locked at a
//! time, and a maptrack never locked while a grant table is (lock order maptrack → table).

use crate::gnttab::flags::Header;
use crate::gnttab::host::{GrantHost, PageRef, StealError};
use crate::gnttab::maptrack::Maptrack;
use crate::gnttab::memory::{GrantMemory, Loc};
use crate::gnttab::table::{GrantTable, GrantTableConfig};
use crate::pvmm::Mfn;
use std::boxed::Box;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::{Deref, DerefMut};
use std::vec::Vec;
use xen_abi::DomId;
use xen_abi::grant_table::{
    GNTST_general_error, GNTST_okay, GTF_permit_access, GTF_reading, GTF_readonly, GTF_writing,
    GrantRef,
};

/// Kinds of hypervisor access a hook can wait for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Load,
    Store,
    Cas,
    And,
    Or,
    /// `GrantHost::copy_bytes` (loc = destination frame, offset 0).
    Copy,
}

type Action = Box<dyn FnOnce(&FakeHost)>;

struct Hook {
    kind: Access,
    at: Loc,
    /// Matching accesses to let through before firing.
    skip: u32,
    action: Action,
}

/// The type a frame is in (`PGT_*` as far as grants care).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameType {
    None,
    Writable,
    /// Any type a writable reference conflicts with (page table, descriptor page).
    PageTable,
}

#[derive(Clone, Debug)]
pub struct Frame {
    pub owner: Option<DomId>,
    /// General references, the allocation reference included.
    pub count: u32,
    pub ty: FrameType,
    pub type_count: u32,
    pub freed: bool,
}

#[derive(Clone, Debug, Default)]
pub struct Dom {
    pub dying: bool,
    pub external: bool,
    pub tot_pages: u32,
    pub max_pages: u32,
}

/// A recorded host (PV page-table) mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostMap {
    pub mfn: Mfn,
    pub flags: u32,
    pub cache_flags: u16,
}

/// Things whose order matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Flush(DomId),
    PutPage(Mfn),
    PutType(Mfn),
}

pub struct FakeHost {
    mem: RefCell<BTreeMap<Mfn, Box<[u8; 4096]>>>,
    hooks: RefCell<Vec<Hook>>,
    pub frames: RefCell<BTreeMap<Mfn, Frame>>,
    pub doms: RefCell<BTreeMap<DomId, Dom>>,
    tables: RefCell<BTreeMap<DomId, Option<GrantTable>>>,
    maptracks: RefCell<BTreeMap<DomId, Option<Maptrack>>>,
    held_tables: Cell<u32>,
    held_maptracks: Cell<u32>,
    pub host_maps: RefCell<BTreeMap<(DomId, u64), HostMap>>,
    pub events: RefCell<Vec<Event>>,
    pub crashed: RefCell<Vec<DomId>>,
    pub io_permitted: RefCell<BTreeSet<Mfn>>,
    next_mfn: Cell<Mfn>,
    /// Table frames still allocatable (`None`: unlimited).
    pub table_frame_budget: Cell<Option<u32>>,
    pub relocate_to: Cell<Option<Mfn>>,
    pub m2p: RefCell<BTreeMap<Mfn, u64>>,
}

/// Lock guard that takes the value out of the fake's map and puts it back on drop; a second
/// lock of the same value panics (it would deadlock in the hypervisor).
pub struct Guard<'a, T> {
    slot: &'a RefCell<BTreeMap<DomId, Option<T>>>,
    held: &'a Cell<u32>,
    dom: DomId,
    val: Option<T>,
}

impl<T> Deref for Guard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.val.as_ref().unwrap()
    }
}

impl<T> DerefMut for Guard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.val.as_mut().unwrap()
    }
}

impl<T> Drop for Guard<'_, T> {
    fn drop(&mut self) {
        self.held.set(self.held.get() - 1);
        if let Some(slot) = self.slot.borrow_mut().get_mut(&self.dom) {
            *slot = self.val.take();
        }
    }
}

fn lock<'a, T>(
    slot: &'a RefCell<BTreeMap<DomId, Option<T>>>,
    held: &'a Cell<u32>,
    dom: DomId,
) -> Option<Guard<'a, T>> {
    let val = match slot.borrow_mut().get_mut(&dom) {
        None => return None,
        Some(v) => v.take().unwrap_or_else(|| panic!("d{dom} locked twice")),
    };
    held.set(held.get() + 1);
    Some(Guard {
        slot,
        held,
        dom,
        val: Some(val),
    })
}

pub const RAM_BASE: Mfn = 0x1000;
const TABLE_FRAME_BASE: Mfn = 0x10_0000;

impl FakeHost {
    pub fn new() -> Self {
        Self {
            mem: RefCell::default(),
            hooks: RefCell::default(),
            frames: RefCell::default(),
            doms: RefCell::default(),
            tables: RefCell::default(),
            maptracks: RefCell::default(),
            held_tables: Cell::new(0),
            held_maptracks: Cell::new(0),
            host_maps: RefCell::default(),
            events: RefCell::default(),
            crashed: RefCell::default(),
            io_permitted: RefCell::default(),
            next_mfn: Cell::new(TABLE_FRAME_BASE),
            table_frame_budget: Cell::new(None),
            relocate_to: Cell::new(None),
            m2p: RefCell::default(),
        }
    }

    /// A domain with `nr_frames` RAM frames (`RAM_BASE + dom * 0x100 + i`) and default limits.
    pub fn add_domain(&self, dom: DomId, nr_frames: u32) -> Vec<Mfn> {
        self.add_domain_with(dom, nr_frames, GrantTableConfig::default(), 2)
    }

    pub fn add_domain_with(
        &self,
        dom: DomId,
        nr_frames: u32,
        config: GrantTableConfig,
        nr_vcpus: u32,
    ) -> Vec<Mfn> {
        self.doms.borrow_mut().insert(
            dom,
            Dom {
                tot_pages: nr_frames,
                max_pages: nr_frames + 4,
                ..Dom::default()
            },
        );
        let frames: Vec<Mfn> = (0..nr_frames)
            .map(|i| RAM_BASE + Mfn::from(dom) * 0x100 + Mfn::from(i))
            .collect();
        for &mfn in &frames {
            self.add_frame(mfn, Some(dom));
        }
        let table = GrantTable::new(dom, config, self).expect("table");
        self.tables.borrow_mut().insert(dom, Some(table));
        self.maptracks.borrow_mut().insert(
            dom,
            Some(Maptrack::new(nr_vcpus, config.max_maptrack_frames)),
        );
        frames
    }

    pub fn add_frame(&self, mfn: Mfn, owner: Option<DomId>) {
        self.frames.borrow_mut().insert(
            mfn,
            Frame {
                owner,
                count: u32::from(owner.is_some()),
                ty: FrameType::None,
                type_count: 0,
                freed: false,
            },
        );
        self.mem.borrow_mut().insert(mfn, Box::new([0; 4096]));
    }

    /// Removes a domain and its grant state (it no longer exists).
    pub fn remove_domain(&self, dom: DomId) -> Option<GrantTable> {
        self.doms.borrow_mut().remove(&dom);
        self.maptracks.borrow_mut().remove(&dom);
        self.tables.borrow_mut().remove(&dom).flatten()
    }

    pub fn frame(&self, mfn: Mfn) -> Frame {
        self.frames.borrow()[&mfn].clone()
    }

    pub fn count(&self, mfn: Mfn) -> u32 {
        self.frame(mfn).count
    }

    pub fn type_count(&self, mfn: Mfn) -> u32 {
        self.frame(mfn).type_count
    }

    pub fn set_type(&self, mfn: Mfn, ty: FrameType, count: u32) {
        let mut f = self.frames.borrow_mut();
        let f = f.get_mut(&mfn).unwrap();
        f.ty = ty;
        f.type_count = count;
    }

    pub fn with_table<R>(&self, dom: DomId, f: impl FnOnce(&mut GrantTable) -> R) -> R {
        let mut g = self.grant_table(dom).expect("table");
        f(&mut g)
    }

    pub fn with_maptrack<R>(&self, dom: DomId, f: impl FnOnce(&mut Maptrack) -> R) -> R {
        let mut g = self.maptrack(dom).expect("maptrack");
        f(&mut g)
    }

    pub fn set_dying(&self, dom: DomId) {
        self.doms.borrow_mut().get_mut(&dom).unwrap().dying = true;
    }

    // ---- Hooks ---------------------------------------------------------------------------

    /// Runs `action` (the racing guest) right before the hypervisor's next `kind` access to
    /// `at`, after letting `skip` such accesses through.
    pub fn before(
        &self,
        kind: Access,
        at: Loc,
        skip: u32,
        action: impl FnOnce(&FakeHost) + 'static,
    ) {
        self.hooks.borrow_mut().push(Hook {
            kind,
            at,
            skip,
            action: Box::new(action),
        });
    }

    pub fn hooks_pending(&self) -> usize {
        self.hooks.borrow().len()
    }

    fn fire(&self, kind: Access, at: Loc) {
        let action = {
            let mut hooks = self.hooks.borrow_mut();
            let Some(i) = hooks.iter().position(|h| h.kind == kind && h.at == at) else {
                return;
            };
            if hooks[i].skip > 0 {
                hooks[i].skip -= 1;
                return;
            }
            hooks.remove(i).action
        };
        action(self);
    }

    // ---- Raw memory (the guest's view; never fires hooks) ----------------------------------

    fn with_bytes<R>(&self, at: Loc, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
        let mut mem = self.mem.borrow_mut();
        let frame = mem
            .get_mut(&at.mfn)
            .unwrap_or_else(|| panic!("no frame {:#x}", at.mfn));
        f(&mut frame[at.offset..at.offset + len])
    }

    pub fn raw_u16(&self, at: Loc) -> u16 {
        self.with_bytes(at, 2, |b| u16::from_le_bytes(b.try_into().unwrap()))
    }

    pub fn raw_u32(&self, at: Loc) -> u32 {
        self.with_bytes(at, 4, |b| u32::from_le_bytes(b.try_into().unwrap()))
    }

    pub fn raw_u64(&self, at: Loc) -> u64 {
        self.with_bytes(at, 8, |b| u64::from_le_bytes(b.try_into().unwrap()))
    }

    pub fn raw_set_u16(&self, at: Loc, v: u16) {
        self.with_bytes(at, 2, |b| b.copy_from_slice(&v.to_le_bytes()));
    }

    pub fn raw_set_u32(&self, at: Loc, v: u32) {
        self.with_bytes(at, 4, |b| b.copy_from_slice(&v.to_le_bytes()));
    }

    pub fn raw_set_u64(&self, at: Loc, v: u64) {
        self.with_bytes(at, 8, |b| b.copy_from_slice(&v.to_le_bytes()));
    }

    pub fn bytes(&self, mfn: Mfn, offset: usize, len: usize) -> Vec<u8> {
        self.with_bytes(Loc { mfn, offset }, len, |b| b.to_vec())
    }

    pub fn fill(&self, mfn: Mfn, offset: usize, data: &[u8]) {
        self.with_bytes(Loc { mfn, offset }, data.len(), |b| b.copy_from_slice(data));
    }
}

/// The granting guest: what a Linux front- or backend does to its own grant table.
pub struct Guest<'a> {
    pub host: &'a FakeHost,
    pub dom: DomId,
}

/// Where a guest's entry lives (computed while no hypervisor operation runs, so hooks can
/// use it without locking the table).
#[derive(Clone, Copy, Debug)]
pub struct EntryLocs {
    pub header: Loc,
    pub status: Loc,
    pub v2: bool,
}

impl Guest<'_> {
    pub fn locs(&self, gref: GrantRef) -> EntryLocs {
        self.host.with_table(self.dom, |t| EntryLocs {
            header: t.header_loc(gref),
            status: t.status_loc(gref),
            v2: t.version() == crate::gnttab::GrantVersion::V2,
        })
    }

    /// `gnttab_grant_foreign_access_ref`: frame first, then flags+domid.
    pub fn grant(&self, gref: GrantRef, to: DomId, frame: u64, readonly: bool) {
        let l = self.locs(gref);
        let flags = GTF_permit_access | if readonly { GTF_readonly } else { 0 };
        self.write_entry(l, Header { flags, domid: to }, frame);
    }

    pub fn write_entry(&self, l: EntryLocs, hdr: Header, frame: u64) {
        if l.v2 {
            self.host.raw_set_u64(l.header.add(8), frame);
        } else {
            self.host.raw_set_u32(l.header.add(4), frame as u32);
        }
        self.host.raw_set_u32(l.header, hdr.raw());
    }

    pub fn header(&self, gref: GrantRef) -> Header {
        Header::from_raw(self.host.raw_u32(self.locs(gref).header))
    }

    /// The in-use bits the guest sees (v1 flags, v2 status word).
    pub fn in_use(&self, gref: GrantRef) -> u16 {
        self.host.raw_u16(self.locs(gref).status) & (GTF_reading | GTF_writing)
    }
}

/// `gnttab_end_foreign_access_ref` for v1: CAS the flags to 0 unless in use. Usable from hooks.
pub fn guest_revoke_v1(host: &FakeHost, l: EntryLocs) -> bool {
    loop {
        let flags = host.raw_u16(l.header);
        if flags & (GTF_reading | GTF_writing) != 0 {
            return false;
        }
        // The fake runs one thread: a read and a write back to back are a CAS.
        if host.raw_u16(l.header) == flags {
            host.raw_set_u16(l.header, 0);
            return true;
        }
    }
}

/// `gnttab_end_foreign_access_ref` for v2: clear the flags, full barrier, then the status word
/// decides whether the grant was still in use.
pub fn guest_revoke_v2(host: &FakeHost, l: EntryLocs) -> bool {
    host.raw_set_u16(l.header, 0);
    host.raw_u16(l.status) & (GTF_reading | GTF_writing) == 0
}

impl GrantMemory for FakeHost {
    fn load_u16(&self, at: Loc) -> u16 {
        self.fire(Access::Load, at);
        self.raw_u16(at)
    }
    fn load_u32(&self, at: Loc) -> u32 {
        self.fire(Access::Load, at);
        self.raw_u32(at)
    }
    fn load_u64(&self, at: Loc) -> u64 {
        self.fire(Access::Load, at);
        self.raw_u64(at)
    }
    fn store_u16(&self, at: Loc, val: u16) {
        self.fire(Access::Store, at);
        self.raw_set_u16(at, val)
    }
    fn store_u32(&self, at: Loc, val: u32) {
        self.fire(Access::Store, at);
        self.raw_set_u32(at, val)
    }
    fn store_u64(&self, at: Loc, val: u64) {
        self.fire(Access::Store, at);
        self.raw_set_u64(at, val)
    }
    fn cmpxchg_u32(&self, at: Loc, expected: u32, new: u32) -> u32 {
        self.fire(Access::Cas, at);
        let found = self.raw_u32(at);
        if found == expected {
            self.raw_set_u32(at, new);
        }
        found
    }
    fn and_u16(&self, at: Loc, mask: u16) {
        self.fire(Access::And, at);
        self.raw_set_u16(at, self.raw_u16(at) & mask)
    }
    fn or_u16(&self, at: Loc, bits: u16) {
        self.fire(Access::Or, at);
        self.raw_set_u16(at, self.raw_u16(at) | bits)
    }
    fn zero_frame(&self, mfn: Mfn) {
        self.mem.borrow_mut().get_mut(&mfn).unwrap().fill(0);
    }
}

impl GrantHost for FakeHost {
    type Table<'a> = Guard<'a, GrantTable>;
    type Maptrack<'a> = Guard<'a, Maptrack>;

    fn domain_exists(&self, dom: DomId) -> bool {
        self.doms.borrow().contains_key(&dom)
    }

    fn is_dying(&self, dom: DomId) -> bool {
        self.doms.borrow().get(&dom).is_some_and(|d| d.dying)
    }

    fn grant_table(&self, dom: DomId) -> Option<Self::Table<'_>> {
        assert_eq!(self.held_tables.get(), 0, "two grant tables locked at once");
        lock(&self.tables, &self.held_tables, dom)
    }

    fn maptrack(&self, dom: DomId) -> Option<Self::Maptrack<'_>> {
        assert_eq!(
            self.held_tables.get(),
            0,
            "maptrack locked under a grant table"
        );
        assert_eq!(self.held_maptracks.get(), 0, "two maptracks locked at once");
        lock(&self.maptracks, &self.held_maptracks, dom)
    }

    fn paging_external(&self, dom: DomId) -> bool {
        self.doms.borrow().get(&dom).is_some_and(|d| d.external)
    }

    fn crash_domain(&self, dom: DomId) {
        self.crashed.borrow_mut().push(dom);
    }

    fn get_paged_frame(&self, dom: DomId, gfn: u64, _readonly: bool) -> Result<Mfn, i16> {
        if self.get_page(gfn, dom) {
            Ok(gfn)
        } else {
            Err(xen_abi::grant_table::GNTST_bad_page)
        }
    }

    fn get_page_owner_and_reference(&self, mfn: Mfn) -> PageRef {
        let mut frames = self.frames.borrow_mut();
        match frames.get_mut(&mfn) {
            None => PageRef::Invalid,
            Some(f) if f.count == 0 || f.owner.is_none() => PageRef::Unowned,
            Some(f) => {
                f.count += 1;
                PageRef::Owned(f.owner.unwrap())
            }
        }
    }

    fn get_page(&self, mfn: Mfn, dom: DomId) -> bool {
        let mut frames = self.frames.borrow_mut();
        match frames.get_mut(&mfn) {
            Some(f) if f.count > 0 && f.owner == Some(dom) => {
                f.count += 1;
                true
            }
            _ => false,
        }
    }

    fn put_page(&self, mfn: Mfn) {
        self.events.borrow_mut().push(Event::PutPage(mfn));
        let mut frames = self.frames.borrow_mut();
        let f = frames.get_mut(&mfn).unwrap();
        assert!(f.count > 0, "put_page underflow on {mfn:#x}");
        f.count -= 1;
        if f.count == 0 {
            f.freed = true;
            if f.ty == FrameType::Writable {
                f.ty = FrameType::None;
            }
        }
    }

    fn get_page_type_writable(&self, mfn: Mfn) -> bool {
        let mut frames = self.frames.borrow_mut();
        let f = frames.get_mut(&mfn).unwrap();
        assert!(f.count > 0, "type reference without a general one");
        if f.type_count == 0 {
            f.ty = FrameType::Writable;
        } else if f.ty != FrameType::Writable {
            return false;
        }
        f.type_count += 1;
        true
    }

    fn put_page_type(&self, mfn: Mfn) {
        self.events.borrow_mut().push(Event::PutType(mfn));
        let mut frames = self.frames.borrow_mut();
        let f = frames.get_mut(&mfn).unwrap();
        assert!(
            f.type_count > 0 && f.ty == FrameType::Writable,
            "put_page_type on {mfn:#x}"
        );
        f.type_count -= 1;
    }

    fn is_iomem_page(&self, mfn: Mfn) -> bool {
        self.frames
            .borrow()
            .get(&mfn)
            .is_none_or(|f| f.owner == Some(xen_abi::xen::DOMID_IO))
    }

    fn iomem_access_permitted(&self, _dom: DomId, mfn: Mfn) -> bool {
        self.io_permitted.borrow().contains(&mfn)
    }

    fn create_host_mapping(
        &self,
        mapper: DomId,
        addr: u64,
        mfn: Mfn,
        flags: u32,
        cache: u16,
    ) -> i16 {
        // Address 0xbad stands for one without an L1 entry.
        if addr == 0xbad {
            return GNTST_general_error;
        }
        let old = self.host_maps.borrow_mut().insert(
            (mapper, addr),
            HostMap {
                mfn,
                flags,
                cache_flags: cache,
            },
        );
        assert!(old.is_none(), "mapping over a live grant mapping");
        GNTST_okay
    }

    fn replace_host_mapping(
        &self,
        mapper: DomId,
        addr: u64,
        mfn: Mfn,
        new_addr: u64,
        _flags: u32,
    ) -> i16 {
        let mut maps = self.host_maps.borrow_mut();
        match maps.get(&(mapper, addr)) {
            Some(m) if m.mfn == mfn => {
                maps.remove(&(mapper, addr));
                if new_addr != 0 {
                    maps.remove(&(mapper, new_addr));
                }
                GNTST_okay
            }
            _ => GNTST_general_error,
        }
    }

    fn flush_tlb(&self, dom: DomId) {
        self.events.borrow_mut().push(Event::Flush(dom));
    }

    fn copy_bytes(&self, dest: Mfn, dest_offset: usize, src: Mfn, src_offset: usize, len: usize) {
        self.fire(
            Access::Copy,
            Loc {
                mfn: dest,
                offset: 0,
            },
        );
        let data = self.bytes(src, src_offset, len);
        self.fill(dest, dest_offset, &data);
    }

    fn alloc_table_frame(&self, dom: DomId) -> Option<Mfn> {
        if let Some(budget) = self.table_frame_budget.get() {
            if budget == 0 {
                return None;
            }
            self.table_frame_budget.set(Some(budget - 1));
        }
        let mfn = self.next_mfn.get();
        self.next_mfn.set(mfn + 1);
        self.add_frame(mfn, Some(dom));
        Some(mfn)
    }

    fn unshare_table_frame(&self, _dom: DomId, mfn: Mfn) -> bool {
        let mut frames = self.frames.borrow_mut();
        let f = frames.get_mut(&mfn).unwrap();
        if f.count != 1 {
            return false;
        }
        f.count = 0;
        f.owner = None;
        true
    }

    fn reshare_table_frame(&self, dom: DomId, mfn: Mfn) {
        let mut frames = self.frames.borrow_mut();
        let f = frames.get_mut(&mfn).unwrap();
        f.count = 1;
        f.owner = Some(dom);
    }

    fn free_table_frame(&self, mfn: Mfn) {
        let mut frames = self.frames.borrow_mut();
        let f = frames.get_mut(&mfn).unwrap();
        f.count = 0;
        f.owner = None;
        f.freed = true;
    }

    fn steal_page(&self, dom: DomId, gmfn: u64) -> Result<Mfn, StealError> {
        let mut frames = self.frames.borrow_mut();
        let Some(f) = frames.get_mut(&gmfn) else {
            return Err(StealError::BadPage);
        };
        if f.owner != Some(dom) || f.count != 1 || f.type_count != 0 {
            return Err(StealError::BadPage);
        }
        f.owner = None;
        f.count = 0;
        self.doms.borrow_mut().get_mut(&dom).unwrap().tot_pages -= 1;
        self.m2p.borrow_mut().remove(&gmfn);
        Ok(gmfn)
    }

    fn free_stolen_page(&self, mfn: Mfn) {
        self.frames.borrow_mut().get_mut(&mfn).unwrap().freed = true;
    }

    fn relocate_for_transfer(&self, _dom: DomId, mfn: Mfn, _max_bits: u32) -> Option<Mfn> {
        let to = self.relocate_to.get()?;
        self.add_frame(to, None);
        let data = self.bytes(mfn, 0, 4096);
        self.fill(to, 0, &data);
        self.frames.borrow_mut().get_mut(&mfn).unwrap().freed = true;
        Some(to)
    }

    fn reserve_page(&self, dom: DomId) -> bool {
        let mut doms = self.doms.borrow_mut();
        let d = doms.get_mut(&dom).unwrap();
        if d.dying || d.tot_pages >= d.max_pages {
            return false;
        }
        d.tot_pages += 1;
        true
    }

    fn unreserve_page(&self, dom: DomId) {
        self.doms.borrow_mut().get_mut(&dom).unwrap().tot_pages -= 1;
    }

    fn assign_page(&self, dom: DomId, mfn: Mfn) -> bool {
        if self.is_dying(dom) {
            return false;
        }
        let mut frames = self.frames.borrow_mut();
        let f = frames.get_mut(&mfn).unwrap();
        f.owner = Some(dom);
        f.count = 1;
        true
    }

    fn physmap_add(&self, _dom: DomId, gfn: u64, mfn: Mfn) -> bool {
        self.m2p.borrow_mut().insert(mfn, gfn);
        true
    }
}

impl FakeHost {
    /// Puts a table (taken out with `remove_domain`) back.
    pub fn put_table(&self, dom: DomId, table: GrantTable) {
        self.tables.borrow_mut().insert(dom, Some(table));
    }
}
