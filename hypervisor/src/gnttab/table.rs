//! A domain's grant table: its version, the frames of shared entries (and v2 status words) it
//! shares with the guest, and the active entries that shadow pinned grants (Xen's
//! `struct grant_table`, `gnttab_grow_table`, `gnttab_{,un}populate_status_frames`,
//! `grant_table_init`, `grant_table_destroy`).
//!
//! The frames are allocated by the host and written by the guest; this module only knows where
//! each entry lives ([`GrantTable::header_loc`] and friends). Everything else in it is private
//! hypervisor state, protected by the lock behind [`super::GrantHost::grant_table`].

use super::active::ActiveEntry;
use super::flags::Header;
use super::host::GrantHost;
use super::layout::{
    INITIAL_NR_GRANT_FRAMES, STATUS_ENTRIES_PER_FRAME, STATUS_ENTRY_SIZE, V1_ENTRIES_PER_FRAME,
    V1_ENTRY_SIZE, V2_ENTRIES_PER_FRAME, V2_ENTRY_SIZE, grant_to_status_frames,
};
use super::memory::{GrantMemory, Loc};
use crate::pvmm::Mfn;
use alloc::vec::Vec;
use xen_abi::DomId;
use xen_abi::errno::Errno;
use xen_abi::grant_table::{GTF_sub_page, GrantRef};

/// The layout of the shared entries (`gt_version`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantVersion {
    /// 8-byte entries, in-use bits in the entry's flags, 32-bit frame numbers.
    V1 = 1,
    /// 16-byte entries, in-use bits in separate status frames, 64-bit frames, sub-page and
    /// transitive grants.
    V2 = 2,
}

impl GrantVersion {
    /// The number the ABI uses.
    pub const fn number(self) -> u32 {
        self as u32
    }
}

/// Per-domain limits (Xen's `grant_table_init` arguments; the `max_grant_frames=` /
/// `max_maptrack_frames=` options, `gnttab=max-ver:`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrantTableConfig {
    /// Shared frames the table may grow to (`max_grant_frames`, at least 1).
    pub max_grant_frames: u32,
    /// Maptrack frames the domain may use to map others' grants (`max_maptrack_frames`).
    pub max_maptrack_frames: u32,
    /// Highest version `GNTTABOP_set_version` accepts (1 or 2).
    pub max_version: u32,
}

impl Default for GrantTableConfig {
    fn default() -> Self {
        Self {
            max_grant_frames: super::layout::DEFAULT_MAX_GRANT_FRAMES,
            max_maptrack_frames: super::layout::DEFAULT_MAX_MAPTRACK_FRAMES,
            max_version: 2,
        }
    }
}

/// A sub-page grant (`grant_entry_v2.sub_page`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubPage {
    /// First byte.
    pub page_off: u16,
    /// Length.
    pub length: u16,
    /// The guest frame.
    pub frame: u64,
}

/// One domain's grant table.
#[derive(Debug)]
pub struct GrantTable {
    owner: DomId,
    version: GrantVersion,
    max_version: u32,
    max_grant_frames: u32,
    shared: Vec<Mfn>,
    status: Vec<Mfn>,
    active: Vec<ActiveEntry>,
}

impl GrantTable {
    /// `grant_table_init`: a version-1 table of `owner` with its first shared frame.
    ///
    /// `-EINVAL` for a limit Xen rejects (no frames, a version other than 1 or 2),
    /// `-ENOMEM` if the first frame cannot be allocated.
    pub fn new(
        owner: DomId,
        config: GrantTableConfig,
        host: &impl GrantHost,
    ) -> Result<Self, Errno> {
        if config.max_grant_frames < INITIAL_NR_GRANT_FRAMES
            || !(1..=2).contains(&config.max_version)
        {
            return Err(Errno::EINVAL);
        }
        let mut table = Self {
            owner,
            version: GrantVersion::V1,
            max_version: config.max_version,
            max_grant_frames: config.max_grant_frames,
            shared: Vec::new(),
            status: Vec::new(),
            active: Vec::new(),
        };
        table.grow(0, host)?;
        Ok(table)
    }

    /// The domain the table belongs to.
    pub fn owner(&self) -> DomId {
        self.owner
    }

    /// `gt_version`.
    pub fn version(&self) -> GrantVersion {
        self.version
    }

    /// The highest version the domain may switch to.
    pub fn max_version(&self) -> u32 {
        self.max_version
    }

    /// `nr_grant_frames`.
    pub fn nr_grant_frames(&self) -> u32 {
        self.shared.len() as u32
    }

    /// `nr_status_frames` (0 in version 1).
    pub fn nr_status_frames(&self) -> u32 {
        self.status.len() as u32
    }

    /// `max_grant_frames`.
    pub fn max_grant_frames(&self) -> u32 {
        self.max_grant_frames
    }

    /// The shared frames, in order.
    pub fn shared_frames(&self) -> &[Mfn] {
        &self.shared
    }

    /// The status frames, in order.
    pub fn status_frames(&self) -> &[Mfn] {
        &self.status
    }

    /// `nr_grant_entries`: valid grant references are below this.
    pub fn nr_entries(&self) -> u32 {
        self.nr_grant_frames()
            * match self.version {
                GrantVersion::V1 => V1_ENTRIES_PER_FRAME,
                GrantVersion::V2 => V2_ENTRIES_PER_FRAME,
            }
    }

    /// The active entry of `gref`; `gref` must be below [`GrantTable::nr_entries`].
    pub fn active(&self, gref: GrantRef) -> &ActiveEntry {
        &self.active[gref as usize]
    }

    /// Mutable access to an active entry.
    pub(crate) fn active_mut(&mut self, gref: GrantRef) -> &mut ActiveEntry {
        &mut self.active[gref as usize]
    }

    /// Pinned entries, with their references.
    pub fn active_grants(&self) -> impl Iterator<Item = (GrantRef, &ActiveEntry)> {
        self.active
            .iter()
            .enumerate()
            .filter(|(_, a)| a.pin != 0)
            .map(|(r, a)| (r as GrantRef, a))
    }

    /// Frames of this domain that other domains still have pinned (mapped, or in the middle of
    /// a copy). While any remain the table must not be destroyed: the pins' holders will
    /// unpin through it, and the mappings' references keep the frames from being freed.
    pub fn frames_still_mapped(&self) -> impl Iterator<Item = Mfn> + '_ {
        self.active_grants().map(|(_, a)| a.mfn)
    }

    /// Whether any entry is pinned.
    pub fn has_active_grants(&self) -> bool {
        self.active.iter().any(|a| a.pin != 0)
    }

    // ---- Where entries live -------------------------------------------------------------------

    /// The `flags`/`domid` word of `gref`'s shared entry.
    pub fn header_loc(&self, gref: GrantRef) -> Loc {
        let (per_frame, size) = match self.version {
            GrantVersion::V1 => (V1_ENTRIES_PER_FRAME, V1_ENTRY_SIZE),
            GrantVersion::V2 => (V2_ENTRIES_PER_FRAME, V2_ENTRY_SIZE),
        };
        Loc {
            mfn: self.shared[(gref / per_frame) as usize],
            offset: (gref % per_frame) as usize * size,
        }
    }

    /// The word holding `gref`'s `GTF_reading`/`GTF_writing`: the entry's flags in version 1,
    /// its status word in version 2.
    pub fn status_loc(&self, gref: GrantRef) -> Loc {
        match self.version {
            GrantVersion::V1 => self.header_loc(gref),
            GrantVersion::V2 => Loc {
                mfn: self.status[(gref / STATUS_ENTRIES_PER_FRAME) as usize],
                offset: (gref % STATUS_ENTRIES_PER_FRAME) as usize * STATUS_ENTRY_SIZE,
            },
        }
    }

    /// Reads `gref`'s header.
    pub fn header(&self, mem: &impl GrantMemory, gref: GrantRef) -> Header {
        Header::load(mem, self.header_loc(gref))
    }

    /// The frame a full-page entry names: v1 `frame` (32 bits) or v2 `full_page.frame`.
    pub fn full_page_frame(&self, mem: &impl GrantMemory, gref: GrantRef) -> u64 {
        let hdr = self.header_loc(gref);
        match self.version {
            GrantVersion::V1 => mem.load_u32(hdr.add(4)) as u64,
            GrantVersion::V2 => mem.load_u64(hdr.add(8)),
        }
    }

    /// v2 `sub_page`, if `flags` say the entry is one (version 2 only).
    pub fn sub_page(&self, mem: &impl GrantMemory, gref: GrantRef, flags: u16) -> Option<SubPage> {
        if self.version != GrantVersion::V2 || flags & GTF_sub_page == 0 {
            return None;
        }
        let hdr = self.header_loc(gref);
        Some(SubPage {
            page_off: mem.load_u16(hdr.add(4)),
            length: mem.load_u16(hdr.add(6)),
            frame: mem.load_u64(hdr.add(8)),
        })
    }

    /// Writes the frame a transfer delivered (v1 `frame`, truncated as in Xen; v2
    /// `full_page.frame`).
    pub(crate) fn set_full_page_frame(&self, mem: &impl GrantMemory, gref: GrantRef, frame: u64) {
        let hdr = self.header_loc(gref);
        match self.version {
            GrantVersion::V1 => mem.store_u32(hdr.add(4), frame as u32),
            GrantVersion::V2 => mem.store_u64(hdr.add(8), frame),
        }
    }

    // ---- Size and version ------------------------------------------------------------------------

    /// `gnttab_grow_table`: at least `req_frames` shared frames (and, in version 2, their status
    /// frames); never fewer than [`INITIAL_NR_GRANT_FRAMES`]. The caller checks
    /// `req_frames <= max_grant_frames`. On `-ENOMEM` nothing changed.
    pub(crate) fn grow(&mut self, req_frames: u32, host: &impl GrantHost) -> Result<(), Errno> {
        let req = req_frames
            .max(INITIAL_NR_GRANT_FRAMES)
            .max(self.nr_grant_frames());
        debug_assert!(req <= self.max_grant_frames);
        let old_shared = self.shared.len();
        while self.shared.len() < req as usize {
            match host.alloc_table_frame(self.owner) {
                Some(mfn) => self.shared.push(mfn),
                None => {
                    self.free_frames_from(old_shared, host);
                    return Err(Errno::ENOMEM);
                }
            }
        }
        if self.version == GrantVersion::V2 && self.populate_status_frames(req, host).is_err() {
            self.free_frames_from(old_shared, host);
            return Err(Errno::ENOMEM);
        }
        // Active entries cover the version-1 entry count, the larger of the two layouts, so a
        // version switch never needs to grow them.
        self.active.resize(
            req as usize * V1_ENTRIES_PER_FRAME as usize,
            ActiveEntry::default(),
        );
        Ok(())
    }

    fn free_frames_from(&mut self, first: usize, host: &impl GrantHost) {
        for mfn in self.shared.drain(first..) {
            host.free_table_frame(mfn);
        }
    }

    /// `gnttab_populate_status_frames`: status frames for `grant_frames` shared frames.
    fn populate_status_frames(
        &mut self,
        grant_frames: u32,
        host: &impl GrantHost,
    ) -> Result<(), Errno> {
        let want = grant_to_status_frames(grant_frames) as usize;
        let old = self.status.len();
        while self.status.len() < want {
            match host.alloc_table_frame(self.owner) {
                Some(mfn) => self.status.push(mfn),
                None => {
                    for mfn in self.status.drain(old..) {
                        host.free_table_frame(mfn);
                    }
                    return Err(Errno::ENOMEM);
                }
            }
        }
        Ok(())
    }

    /// `gnttab_unpopulate_status_frames`: takes all status frames back, or none of them
    /// (`-EBUSY`) if the guest still references one.
    fn unpopulate_status_frames(&mut self, host: &impl GrantHost) -> Result<(), Errno> {
        for (i, &mfn) in self.status.iter().enumerate() {
            if !host.unshare_table_frame(self.owner, mfn) {
                for &done in &self.status[..i] {
                    host.reshare_table_frame(self.owner, done);
                }
                return Err(Errno::EBUSY);
            }
        }
        for mfn in self.status.drain(..) {
            host.free_table_frame(mfn);
        }
        Ok(())
    }

    /// Switches the layout; the caller (`ops::setup::set_version`) has checked the switch is
    /// allowed, preserved the reserved entries and will restore them.
    pub(crate) fn switch_version(
        &mut self,
        to: GrantVersion,
        host: &impl GrantHost,
    ) -> Result<(), Errno> {
        match (self.version, to) {
            (GrantVersion::V1, GrantVersion::V2) => {
                self.populate_status_frames(self.nr_grant_frames(), host)?
            }
            (GrantVersion::V2, GrantVersion::V1) => self.unpopulate_status_frames(host)?,
            _ => {}
        }
        // No crud from the old layout may be misread in the new one.
        for &mfn in &self.shared {
            host.zero_frame(mfn);
        }
        self.version = to;
        Ok(())
    }

    /// `grant_table_destroy`: frees the table's frames once its domain is gone.
    ///
    /// Refused (the table is handed back) while entries are still pinned: other domains'
    /// mappings of this domain's frames will be unmapped through this table, and until then
    /// the granted frames keep the references those mappings hold.
    pub fn destroy(mut self, host: &impl GrantHost) -> Result<(), Self> {
        if self.has_active_grants() {
            return Err(self);
        }
        for mfn in self.shared.drain(..).chain(self.status.drain(..)) {
            host.free_table_frame(mfn);
        }
        Ok(())
    }
}
