//! Building a 64-bit PV domain from a kernel image (Xen's `dom0_construct_pv`).
#![allow(non_upper_case_globals)] // Xen's constant names, as spelled in its headers

use super::layout::{Layout, LayoutInput, PAGE};
use super::{Domain, DomainInner, DomainState, Vcpu};
use crate::mm::{frames, frametable, m2p, paging};
use crate::pvmm::{self, FrameEnv, Level, PageInfo};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use spin::Mutex;
use xenolith_arch::layout::{HYPERVISOR_L4_FIRST, HYPERVISOR_L4_LAST, phys_to_virt};
use xenolith_arch::paging::Pte;
use xenolith_arch::trap::TrapFrame;

/// One loadable piece of the kernel, at its destination virtual address.
pub struct Segment<'a> {
    /// Destination virtual address (`p_paddr + VIRT_BASE - PADDR_OFFSET`).
    pub va: u64,
    /// File contents.
    pub data: &'a [u8],
    /// Size in memory (the rest is zero).
    pub memsz: u64,
}

/// What the builder needs to know about the kernel.
pub struct KernelImage<'a> {
    /// Loadable segments.
    pub segments: Vec<Segment<'a>>,
    /// Entry point (the ENTRY note).
    pub entry: u64,
    /// VIRT_BASE.
    pub virt_base: u64,
    /// End of the kernel image.
    pub virt_kend: u64,
    /// `INIT_P2M`: the kernel maps the p2m list itself there.
    pub p2m_base: Option<u64>,
    /// `MOD_START_PFN`: pass the initrd unmapped, by frame number.
    pub unmapped_initrd: bool,
    /// `HYPERCALL_PAGE` address, if the kernel wants one.
    pub hypercall_page: Option<u64>,
    /// PAE_MODE is present (anything but "no"): `start_info.magic` gets its `p` suffix.
    pub pae: bool,
    /// PAE_MODE asks for extended CR3 (libelf's `XEN_PAE_EXTCR3`, what `"yes"` means): the
    /// builder enables `VMASST_TYPE_pae_extended_cr3`, as Xen's `dom0_construct_pv` does.
    pub pae_extended_cr3: bool,
}

/// Why a domain could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildError {
    /// The initial layout does not fit in the memory given.
    TooSmall,
    /// Out of host memory.
    NoMemory,
    /// A kernel segment lies outside the initial mapping.
    SegmentOutside(u64),
    /// The page-type rules refused the initial page tables (a builder bug).
    PageTables(xen_abi::errno::Errno),
    /// The grant table cannot be created: `-EINVAL` for limits Xen refuses
    /// (`gnttab_max_frames=0`, as Xen's `grant_table_init`), `-ENOMEM`.
    GrantTable(xen_abi::errno::Errno),
    /// An HVM (PVH) domain cannot be built: no SVM/VMX, no PHYS32 entry, a layout that does
    /// not fit the guest-physical map.
    Hvm(&'static str),
}

impl core::fmt::Display for BuildError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BuildError::TooSmall => {
                f.write_str("the kernel and its boot data do not fit in the domain's memory")
            }
            BuildError::NoMemory => f.write_str("out of memory"),
            BuildError::SegmentOutside(va) => {
                write!(f, "kernel segment at {va:#x} outside the initial mapping")
            }
            BuildError::PageTables(e) => {
                write!(f, "the initial page tables do not validate ({})", e.name())
            }
            BuildError::GrantTable(e) => {
                write!(f, "the grant table cannot be created ({})", e.name())
            }
            BuildError::Hvm(why) => write!(f, "PVH: {why}"),
        }
    }
}

use xen_abi::xen::{
    SIF_INITDOMAIN, SIF_MOD_START_PFN, SIF_PRIVILEGED, VMASST_TYPE_pae_extended_cr3,
};
/// Flags of the initial mappings (Xen's `L1_PROT` and `L{2,3,4}_PROT` for 64-bit PV).
const L1_PROT: u64 = Pte::PRESENT.bits() | Pte::RW.bits() | Pte::ACCESSED.bits() | Pte::USER.bits();
const LN_PROT: u64 = L1_PROT | Pte::DIRTY.bits();

/// The frames of a domain being built, with VA-based access to its initial mapping.
struct Memory {
    p2m: Vec<u64>,
    layout: Layout,
}

impl Memory {
    fn frame_ptr(&self, pfn: u64) -> *mut u8 {
        phys_to_virt(self.p2m[pfn as usize] << 12) as *mut u8
    }

    /// Writes `bytes` at guest virtual address `va` of the initial mapping.
    fn write_va(&self, va: u64, bytes: &[u8]) {
        let mut done = 0usize;
        while done < bytes.len() {
            let at = va + done as u64;
            let off = (at % PAGE) as usize;
            let n = (PAGE as usize - off).min(bytes.len() - done);
            let pfn = self.layout.pfn_of(at);
            // SAFETY: the frame belongs to the domain being built and is mapped by the direct
            // map; `off + n <= PAGE`.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    bytes[done..].as_ptr(),
                    self.frame_ptr(pfn).add(off),
                    n,
                )
            };
            done += n;
        }
    }

    fn write_pfn(&self, pfn: u64, bytes: &[u8]) {
        for (i, chunk) in bytes.chunks(PAGE as usize).enumerate() {
            // SAFETY: as in `write_va`; each chunk is at most one page.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    chunk.as_ptr(),
                    self.frame_ptr(pfn + i as u64),
                    chunk.len(),
                )
            };
        }
    }

    fn table(&self, pfn: u64) -> *mut u64 {
        self.frame_ptr(pfn).cast()
    }
}

/// Allocates `nr_pages` zeroed frames, biggest blocks first; returns the p2m.
pub(crate) fn allocate(nr_pages: u64) -> Result<Vec<u64>, BuildError> {
    let mut p2m = Vec::with_capacity(nr_pages as usize);
    let mut order = 9usize;
    while (p2m.len() as u64) < nr_pages {
        let left = nr_pages - p2m.len() as u64;
        while order > 0 && (1u64 << order) > left {
            order -= 1;
        }
        match frames::alloc(order) {
            Some(pa) => {
                // SAFETY: fresh frames, mapped by the direct map.
                unsafe {
                    core::ptr::write_bytes(phys_to_virt(pa) as *mut u8, 0, (PAGE << order) as usize)
                };
                p2m.extend((0..1u64 << order).map(|i| (pa >> 12) + i));
            }
            None if order > 0 => order -= 1,
            None => {
                for &mfn in &p2m {
                    frames::free(mfn << 12, 0);
                }
                return Err(BuildError::NoMemory);
            }
        }
    }
    Ok(p2m)
}

/// A fresh `shared_info` frame (physical address): zeroed, with events masked on every
/// legacy `vcpu_info` (byte 1 of each 64-byte slot), as Xen does for new vCPUs.
pub(crate) fn new_shared_info() -> Result<u64, BuildError> {
    let shared_info = frames::alloc(0).ok_or(BuildError::NoMemory)?;
    // SAFETY: a fresh frame for us alone, covered by the direct map.
    unsafe {
        let p = phys_to_virt(shared_info) as *mut u8;
        core::ptr::write_bytes(p, 0, PAGE as usize);
        for i in 0..32 {
            p.add(i * 64 + 1).write(1);
        }
    }
    Ok(shared_info)
}

/// Page-table frames for the initial mappings, taken in order from a range of guest frames.
struct PtAlloc {
    next: u64,
    end: u64,
}

impl PtAlloc {
    fn take(&mut self) -> u64 {
        assert!(
            self.next < self.end,
            "page-table frame budget exceeded (layout bug)"
        );
        self.next += 1;
        self.next - 1
    }
}

/// Maps guest virtual `va` to guest frame `pfn` with `l1_flags` in the tables under the L4 at
/// `l4_pfn`, creating intermediate tables from `pts`.
fn map_page(mem: &Memory, l4_pfn: u64, va: u64, pfn: u64, l1_flags: u64, pts: &mut PtAlloc) {
    let mut table = mem.table(l4_pfn);
    for level in (2..=4u32).rev() {
        let idx = ((va >> (12 + 9 * (level - 1))) & 511) as usize;
        // SAFETY: `table` is a page-table frame of the domain; idx < 512.
        let e = unsafe { table.add(idx).read() };
        let next_pfn = if e & 1 == 0 {
            let p = pts.take();
            // SAFETY: as above.
            unsafe { table.add(idx).write((mem.p2m[p as usize] << 12) | LN_PROT) };
            p
        } else {
            m2p::get(e >> 12)
        };
        table = mem.table(next_pfn);
    }
    // SAFETY: `table` is an L1 of the domain.
    unsafe {
        table
            .add(((va >> 12) & 511) as usize)
            .write((mem.p2m[pfn as usize] << 12) | l1_flags)
    };
}

/// Builds the initial page tables for `[v_start, v_end)` in the page-table frames of the
/// layout, maps those frames read-only, and installs the hypervisor's L4 slots. Returns the
/// L4's guest frame.
fn build_page_tables(mem: &Memory) -> u64 {
    let l = &mem.layout;
    let l4_pfn = l.pfn_of(l.vpt.0);
    let mut pts = PtAlloc {
        next: l4_pfn + 1,
        end: l.pfn_of(l.vpt.1),
    };
    let idle_l4 = phys_to_virt(paging::root()) as *const u64;
    let l4 = mem.table(l4_pfn);
    for slot in HYPERVISOR_L4_FIRST..=HYPERVISOR_L4_LAST {
        // SAFETY: both are live page-table frames; slot < 512.
        unsafe { l4.add(slot).write(idle_l4.add(slot).read()) };
    }
    let mut va = l.v_start;
    while va < l.v_end {
        let in_pt = va >= l.vpt.0 && va < l.vpt.1;
        let flags = if in_pt {
            L1_PROT & !Pte::RW.bits()
        } else {
            L1_PROT
        };
        map_page(mem, l4_pfn, va, l.pfn_of(va), flags, &mut pts);
        va += PAGE;
    }
    l4_pfn
}

/// Frames for an `INIT_P2M` mapping of `nr_pages` entries: (data pages, page-table pages).
fn p2m_frames(nr_pages: u64) -> (u64, u64) {
    let data = (nr_pages * 8).div_ceil(PAGE);
    let l1 = data.div_ceil(512);
    let l2 = l1.div_ceil(512);
    let l3 = l2.div_ceil(512);
    (data, l1 + l2 + l3)
}

/// Xen's 64-bit PV hypercall page: one 32-byte `syscall` stub per hypercall, and the special
/// `iret` stub that pushes rcx, r11 and rax first (`pv_ring3_init_hypercall_page`).
fn hypercall_page() -> [u8; 4096] {
    let mut p = [0xccu8; 4096];
    for i in 0..128u32 {
        let s = &mut p[i as usize * 32..][..32];
        let stub: Vec<u8> = if u64::from(i) == xen_abi::hypercall::iret {
            [
                &[0x51, 0x41, 0x53, 0x50, 0xb8][..],
                &i.to_le_bytes(),
                &[0x0f, 0x05],
            ]
            .concat()
        } else {
            [
                &[0x51, 0x41, 0x53, 0xb8][..],
                &i.to_le_bytes(),
                &[0x0f, 0x05, 0x41, 0x5b, 0x59, 0xc3],
            ]
            .concat()
        };
        s[..stub.len()].copy_from_slice(&stub);
    }
    p
}

/// Fills a 64-bit `start_info` (1168 bytes; offsets from `xen/include/public/xen.h`).
#[allow(clippy::too_many_arguments)]
fn start_info(
    magic: &str,
    nr_pages: u64,
    shared_info_maddr: u64,
    flags: u32,
    l: &Layout,
    mfn_list: u64,
    mod_start: u64,
    mod_len: u64,
    cmdline: &str,
) -> Vec<u8> {
    let mut b = vec![0u8; 1168];
    let put = |b: &mut [u8], off: usize, v: u64| b[off..off + 8].copy_from_slice(&v.to_le_bytes());
    b[..magic.len().min(31)].copy_from_slice(&magic.as_bytes()[..magic.len().min(31)]);
    put(&mut b, 32, nr_pages);
    put(&mut b, 40, shared_info_maddr);
    b[48..52].copy_from_slice(&flags.to_le_bytes());
    put(&mut b, 88, l.vpt.0);
    put(&mut b, 96, l.nr_pt_pages);
    put(&mut b, 104, mfn_list);
    put(&mut b, 112, mod_start);
    put(&mut b, 120, mod_len);
    let n = cmdline.len().min(1023);
    b[128..128 + n].copy_from_slice(&cmdline.as_bytes()[..n]);
    b
}

/// Prints the layout the way Xen's dom0 builder does.
fn report_layout(l: &Layout, k: &KernelImage<'_>) {
    let kstart = k.segments.iter().map(|s| s.va).min().unwrap_or(l.v_start);
    crate::printk!("VIRTUAL MEMORY ARRANGEMENT:\n");
    crate::printk!(" Loaded kernel: {kstart:016x}->{:016x}\n", k.virt_kend);
    if l.vinitrd.0 != l.vinitrd.1 {
        crate::printk!(
            " Init. ramdisk: {:016x}->{:016x}\n",
            l.vinitrd.0,
            l.vinitrd.1
        );
    }
    crate::printk!(
        " Phys-Mach map: {:016x}->{:016x}\n",
        l.vphysmap.0,
        l.vphysmap.1
    );
    crate::printk!(
        " Start info:    {:016x}->{:016x}\n",
        l.vstartinfo.0,
        l.vstartinfo.1
    );
    crate::printk!(" Page tables:   {:016x}->{:016x}\n", l.vpt.0, l.vpt.1);
    crate::printk!(" Boot stack:    {:016x}->{:016x}\n", l.vstack.0, l.vstack.1);
    crate::printk!(" TOTAL:         {:016x}->{:016x}\n", l.v_start, l.v_end);
    crate::printk!(" ENTRY ADDRESS: {:016x}\n", k.entry);
}

/// Who the domain being built is.
pub struct DomainConfig<'a> {
    /// Domain id.
    pub id: u16,
    /// Name (`xl list`).
    pub name: &'a str,
    /// The hardware/control domain (dom0): privileged, `SIF_INITDOMAIN`, no console ring.
    pub privileged: bool,
    /// Pages of memory.
    pub nr_pages: u64,
    /// Ceiling for the balloon (`max_pages`).
    pub max_pages: u64,
    /// vCPUs.
    pub nr_vcpus: u32,
}

/// Builds a 64-bit PV domain from `kernel` (and optional `initrd`): dom0 as Xen's
/// `dom0_construct_pv` does, a domU as the toolstack's `xc_dom_*` builder does (start_info
/// flags 0, xenstore and console pages with their event channels offered to dom0).
pub fn build_pv(
    kernel: &KernelImage<'_>,
    initrd: Option<&[u8]>,
    cmdline: &str,
    cfg: &DomainConfig<'_>,
) -> Result<&'static mut Domain, BuildError> {
    let (nr_pages, nr_vcpus, id) = (cfg.nr_pages, cfg.nr_vcpus, cfg.id);
    let initrd = initrd.unwrap_or(&[]);
    let layout = Layout::compute(&LayoutInput {
        v_start: kernel.virt_base,
        virt_kend: kernel.virt_kend,
        nr_pages,
        initrd_len: initrd.len() as u64,
        unmapped_initrd: kernel.unmapped_initrd,
        p2m_base: kernel.p2m_base,
        is_dom0: cfg.privileged,
    })
    .ok_or(BuildError::TooSmall)?;
    if cfg.privileged {
        report_layout(&layout, kernel);
    }
    let initrd_pages = if kernel.unmapped_initrd {
        (initrd.len() as u64).div_ceil(PAGE)
    } else {
        0
    };
    // Frame order (Xen's): the initial mapping, the unmapped initrd, the separately mapped
    // p2m list and its page tables, then the rest of the domain's memory.
    let first_p2m_pfn = layout.initial_pages() + initrd_pages;
    let (p2m_data, p2m_pts) = if kernel.p2m_base.is_some() {
        p2m_frames(nr_pages)
    } else {
        (0, 0)
    };
    if first_p2m_pfn + p2m_data + p2m_pts > nr_pages {
        return Err(BuildError::TooSmall);
    }
    for s in &kernel.segments {
        if s.va < layout.v_start || s.va + s.memsz > layout.vinitrd.0 {
            return Err(BuildError::SegmentOutside(s.va));
        }
    }
    let mem = Memory {
        p2m: allocate(nr_pages)?,
        layout,
    };
    {
        let mut env = frametable::lock();
        for (pfn, &mfn) in mem.p2m.iter().enumerate() {
            m2p::set(mfn, pfn as u64);
            if let Some(p) = env.page_mut(mfn) {
                *p = PageInfo::assigned(id);
            }
        }
    }
    for s in &kernel.segments {
        mem.write_va(s.va, s.data);
    }
    let (mod_start, mod_len) = match (initrd.is_empty(), kernel.unmapped_initrd) {
        (true, _) => (0, 0),
        (false, true) => {
            mem.write_pfn(layout.initial_pages(), initrd);
            (layout.initial_pages(), initrd.len() as u64)
        }
        (false, false) => {
            mem.write_va(layout.vinitrd.0, initrd);
            (layout.vinitrd.0, initrd.len() as u64)
        }
    };
    let p2m_bytes: Vec<u8> = mem.p2m.iter().flat_map(|m| m.to_le_bytes()).collect();
    if let Some(hp) = kernel.hypercall_page {
        mem.write_va(hp, &hypercall_page());
    }
    let l4_pfn = build_page_tables(&mem);
    let mfn_list = match kernel.p2m_base {
        None => {
            mem.write_va(layout.vphysmap.0, &p2m_bytes);
            layout.vphysmap.0
        }
        Some(base) => {
            // The p2m list in its own frames, mapped writable at the kernel's address, with
            // the unused tail of the last page marked invalid.
            mem.write_pfn(first_p2m_pfn, &p2m_bytes);
            let tail = (p2m_data * PAGE) as usize - p2m_bytes.len();
            let last = first_p2m_pfn + p2m_data - 1;
            // SAFETY: the last p2m frame belongs to the domain; the tail lies in it.
            unsafe {
                core::ptr::write_bytes(mem.frame_ptr(last).add(PAGE as usize - tail), 0xff, tail)
            };
            let mut pts = PtAlloc {
                next: first_p2m_pfn + p2m_data,
                end: first_p2m_pfn + p2m_data + p2m_pts,
            };
            for i in 0..p2m_data {
                map_page(
                    &mem,
                    l4_pfn,
                    base + i * PAGE,
                    first_p2m_pfn + i,
                    L1_PROT,
                    &mut pts,
                );
            }
            base
        }
    };
    let l4_mfn = mem.p2m[l4_pfn as usize];

    let shared_info = new_shared_info()?;
    // Type everything through the same rules guests are held to: validating the L4 types
    // the whole tree (page-table frames as tables, mapped frames writable) and refuses a
    // writable mapping of any page-table frame. Pinned, and held as vCPU 0's kernel table.
    let mut guest_table = 0;
    {
        let mut env = frametable::lock();
        if let Some(p) = env.page_mut(shared_info >> 12) {
            *p = PageInfo::xen_shared(id, true);
        }
        pvmm::pin_table(&mut env, id, l4_mfn, Level::L4).map_err(BuildError::PageTables)?;
        pvmm::new_baseptr(&mut env, id, id, &mut guest_table, l4_mfn)
            .map_err(BuildError::PageTables)?;
    }
    // Dom0 is told the hypervisor handles P- and C-states (`xen_processor_pmbits << 8`); a
    // domU gets no flags.
    let mut flags = if cfg.privileged {
        SIF_PRIVILEGED | SIF_INITDOMAIN | (0x3 << 8)
    } else {
        0
    };
    if kernel.unmapped_initrd {
        flags |= SIF_MOD_START_PFN;
    }
    // Xen: "xen-3.0-x86_64" plus "p" when the kernel declares a PAE mode.
    let magic = if kernel.pae {
        "xen-3.0-x86_64p"
    } else {
        "xen-3.0-x86_64"
    };
    let mut si = start_info(
        magic,
        nr_pages,
        shared_info,
        flags,
        &layout,
        mfn_list,
        mod_start,
        mod_len,
        cmdline,
    );
    if kernel.p2m_base.is_some() {
        si[1152..1160].copy_from_slice(&first_p2m_pfn.to_le_bytes());
        si[1160..1168].copy_from_slice(&(p2m_data + p2m_pts).to_le_bytes());
    }
    // A domU's xenstore and console: their pages and their event channels, unbound and
    // offered to dom0 (the toolstack allocates the xenstore port first).
    let mut ports = crate::evtchn::PortTable::new(nr_vcpus);
    let mut console = None;
    let mut store = None;
    if !cfg.privileged {
        let store_mfn = mem.p2m[layout.pfn_of(layout.vspecial.0) as usize];
        let console_mfn = mem.p2m[layout.pfn_of(layout.vspecial.0 + PAGE) as usize];
        let offer = crate::evtchn::PortState::Unbound { remote: 0 };
        let store_port = ports.alloc(offer).map_err(|_| BuildError::NoMemory)?;
        let console_port = ports.alloc(offer).map_err(|_| BuildError::NoMemory)?;
        si[56..64].copy_from_slice(&store_mfn.to_le_bytes());
        si[64..68].copy_from_slice(&store_port.to_le_bytes());
        si[72..80].copy_from_slice(&console_mfn.to_le_bytes());
        si[80..84].copy_from_slice(&console_port.to_le_bytes());
        store = Some(super::ConsoleRing {
            mfn: store_mfn,
            port: store_port,
        });
        console = Some(super::ConsoleRing {
            mfn: console_mfn,
            port: console_port,
        });
    }
    mem.write_va(layout.vstartinfo.0, &si);

    let mut v = Box::new(Vcpu::new(0));
    v.regs = TrapFrame {
        rip: kernel.entry,
        cs: u64::from(xenolith_arch::gdt::FLAT_RING3_CS64),
        rflags: 0x202,
        rsp: layout.vstack.1,
        ss: u64::from(xenolith_arch::gdt::FLAT_RING3_DS32),
        rsi: layout.vstartinfo.0,
        ..TrapFrame::default()
    };
    v.pv.guest_table = guest_table;
    // Xen gives every PV vCPU a 10 ms periodic timer until the guest stops it.
    v.pv.periodic_period = 10_000_000;
    v.pv.periodic_next = crate::pv::time::now() + v.pv.periodic_period;
    v.pv.vcpu_info = phys_to_virt(shared_info);
    // The grant table (its first frame shared with the domain) and the maptrack, with the
    // command line's limits (Xen's toolstack defaults domUs to them too).
    let grants = super::grants::DomainGrants::new(
        id,
        nr_vcpus,
        super::grants::config_from(&crate::options::gnttab_booted()),
    )
    .map_err(BuildError::GrantTable)?;
    let d = Box::leak(Box::new(Domain {
        id,
        name: String::from(cfg.name),
        privileged: cfg.privileged,
        shared_info_mfn: shared_info >> 12,
        tot_pages: nr_pages,
        max_pages: cfg.max_pages,
        max_pfn: nr_pages,
        inner: Mutex::new(DomainInner {
            state: DomainState::Running,
            vm_assist: if kernel.pae_extended_cr3 {
                1 << VMASST_TYPE_pae_extended_cr3
            } else {
                0
            },
            unknown_hypercalls_logged: 0,
            pci_cf8: 0,
            cmos_index: 0,
        }),
        stopped: core::sync::atomic::AtomicBool::new(false),
        relinquished: core::sync::atomic::AtomicBool::new(false),
        evtchn: Mutex::new(ports),
        console,
        store,
        grants,
        transferred: core::sync::atomic::AtomicI64::new(0),
        vcpus: Vec::new(),
        hvm: None,
    }));
    v.domain = d as *const Domain;
    v.initialised
        .store(true, core::sync::atomic::Ordering::Relaxed);
    v.up.store(true, core::sync::atomic::Ordering::Release);
    d.vcpus.push(v);
    // Secondary vCPUs start down and uninitialised, each with its legacy vcpu_info slot and
    // Xen's default periodic timer (armed when it first runs); the guest brings them up with
    // VCPUOP_initialise and VCPUOP_up.
    for id in 1..nr_vcpus {
        let mut w = Box::new(Vcpu::new(id));
        w.domain = d as *const Domain;
        w.pv.periodic_period = 10_000_000;
        if id < 32 {
            w.pv.vcpu_info = phys_to_virt(shared_info) + u64::from(id) * 64;
        }
        d.vcpus.push(w);
    }
    Ok(d)
}
