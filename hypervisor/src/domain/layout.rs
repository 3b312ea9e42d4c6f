//! The initial virtual layout of a 64-bit PV domain, as Xen's `dom0_construct_pv`
//! (`xen/arch/x86/pv/dom0_build.c`) computes it.
//!
//! From `v_start` (the kernel's VIRT_BASE): the kernel image; the initrd (unless the kernel
//! asks for it unmapped, `MOD_START_PFN`); the p2m list (unless `INIT_P2M` places it
//! elsewhere); `start_info` (plus the dom0 console info); for a domU the xenstore and console
//! pages (as the toolstack's `alloc_magic_pages` places them); the boot page tables; one page of
//! boot stack; then padding up to a 4 MiB boundary with at least 512 KiB of slack. Virtual address
//! `v_start + n * 4096` maps guest frame `n` throughout.

/// Bytes in a page.
pub const PAGE: u64 = 4096;
/// `sizeof(struct start_info)` for 64-bit guests.
pub const START_INFO_SIZE: u64 = 1168;
/// `sizeof(struct dom0_vga_console_info)`.
pub const DOM0_CONSOLE_INFO_SIZE: u64 = 36;

fn round_pgup(x: u64) -> u64 {
    (x + PAGE - 1) & !(PAGE - 1)
}

/// Number of `1 << shift`-aligned slots `[lo, hi)` touches (Xen's `NR()` macro). Wrapping
/// like Xen's `unsigned long`: kernels live at the very top of the address space, where
/// rounding `hi` up overflows to 0 and the subtraction still gives the right count.
fn nr(lo: u64, hi: u64, shift: u32) -> u64 {
    let m = (1u64 << shift) - 1;
    (hi.wrapping_add(m) & !m).wrapping_sub(lo & !m) >> shift
}

/// What the layout depends on.
#[derive(Clone, Copy, Debug)]
pub struct LayoutInput {
    /// VIRT_BASE: start of the initial mapping.
    pub v_start: u64,
    /// End of the kernel image (`virt_kend`).
    pub virt_kend: u64,
    /// Pages given to the domain.
    pub nr_pages: u64,
    /// Initrd size in bytes (0: none).
    pub initrd_len: u64,
    /// The kernel takes the initrd unmapped, by PFN (`MOD_START_PFN`).
    pub unmapped_initrd: bool,
    /// The kernel maps the p2m list itself at this address (`INIT_P2M`).
    pub p2m_base: Option<u64>,
    /// Dom0 (start_info is followed by the VGA console info).
    pub is_dom0: bool,
}

/// The computed layout (all virtual addresses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Start of the initial mapping.
    pub v_start: u64,
    /// Mapped initrd `[start, end)` (empty when unmapped or absent).
    pub vinitrd: (u64, u64),
    /// p2m list in the initial mapping (empty when `INIT_P2M` puts it elsewhere).
    pub vphysmap: (u64, u64),
    /// `start_info` page(s).
    pub vstartinfo: (u64, u64),
    /// domU: the xenstore page then the console page (empty for dom0).
    pub vspecial: (u64, u64),
    /// Boot page tables.
    pub vpt: (u64, u64),
    /// Boot stack.
    pub vstack: (u64, u64),
    /// End of the initial mapping.
    pub v_end: u64,
    /// Page-table pages in `vpt`.
    pub nr_pt_pages: u64,
}

impl Layout {
    /// Computes the layout; `None` if it does not fit in `nr_pages` or wraps.
    pub fn compute(i: &LayoutInput) -> Option<Layout> {
        let v_start = i.v_start;
        let vinitrd_start = round_pgup(i.virt_kend);
        let vinitrd_end = if i.unmapped_initrd {
            vinitrd_start
        } else {
            vinitrd_start.checked_add(i.initrd_len)?
        };
        let vphysmap_start = round_pgup(vinitrd_end);
        let vphysmap_end = match i.p2m_base {
            Some(_) => vphysmap_start,
            None => vphysmap_start.checked_add(i.nr_pages.checked_mul(8)?)?,
        };
        let vstartinfo_start = round_pgup(vphysmap_end);
        let extra = if i.is_dom0 { DOM0_CONSOLE_INFO_SIZE } else { 0 };
        let vstartinfo_end = vstartinfo_start + START_INFO_SIZE + extra;
        let vspecial_start = round_pgup(vstartinfo_end);
        let vspecial_end = vspecial_start + if i.is_dom0 { 0 } else { 2 * PAGE };
        let vpt_start = vspecial_end;
        let mut nr_pt_pages = 2u64;
        loop {
            let vpt_end = vpt_start.checked_add(nr_pt_pages * PAGE)?;
            let vstack_end = vpt_end + PAGE;
            let mut v_end = (vstack_end + (1 << 22) - 1) & !((1 << 22) - 1);
            if v_end - vstack_end < 512 << 10 {
                v_end += 1 << 22;
            }
            let needed =
                1 + nr(v_start, v_end, 39) + nr(v_start, v_end, 30) + nr(v_start, v_end, 21);
            if needed <= nr_pt_pages {
                let l = Layout {
                    v_start,
                    vinitrd: (vinitrd_start, vinitrd_end),
                    vphysmap: (vphysmap_start, vphysmap_end),
                    vstartinfo: (vstartinfo_start, vstartinfo_end),
                    vspecial: (vspecial_start, vspecial_end),
                    vpt: (vpt_start, vpt_end),
                    vstack: (vpt_end, vstack_end),
                    v_end,
                    nr_pt_pages,
                };
                return (l.initial_pages() <= i.nr_pages).then_some(l);
            }
            nr_pt_pages += 1;
            if nr_pt_pages > 4096 {
                return None;
            }
        }
    }

    /// Pages in the initial mapping (guest frames `0..initial_pages()`).
    pub fn initial_pages(&self) -> u64 {
        (self.v_end - self.v_start) / PAGE
    }

    /// Guest frame number of virtual address `va` in the initial mapping.
    pub fn pfn_of(&self, va: u64) -> u64 {
        (va - self.v_start) / PAGE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_like_dom0() {
        // Debian's 6.1 kernel: VIRT_BASE 0xffffffff80000000, image ends at 0xffffffff84a00000,
        // INIT_P2M and MOD_START_PFN set, 512 MiB.
        let l = Layout::compute(&LayoutInput {
            v_start: 0xffff_ffff_8000_0000,
            virt_kend: 0xffff_ffff_84a0_0000,
            nr_pages: 131_072,
            initrd_len: 10 << 20,
            unmapped_initrd: true,
            p2m_base: Some(0x80_0000_0000),
            is_dom0: true,
        })
        .unwrap();
        assert_eq!(l.vinitrd, (0xffff_ffff_84a0_0000, 0xffff_ffff_84a0_0000));
        assert_eq!(l.vphysmap.0, l.vphysmap.1);
        assert_eq!(l.vstartinfo.0, 0xffff_ffff_84a0_0000);
        assert_eq!(
            l.vspecial.0, l.vspecial.1,
            "dom0 has no xenstore or console page"
        );
        assert_eq!(l.vpt.0, 0xffff_ffff_84a0_1000);
        // One L4, one L3, one L2 and 38 L1s for ~76 MiB, found by the same search as Xen's.
        assert_eq!(l.v_end % (4 << 20), 0);
        assert!(l.v_end - l.vstack.1 >= 512 << 10);
        assert_eq!(
            l.nr_pt_pages,
            1 + 1 + 1 + (l.v_end - l.v_start).div_ceil(2 << 20)
        );
        assert!(
            l.v_end - l.v_start < 1 << 30,
            "Linux needs the region in the first GiB"
        );
    }

    #[test]
    fn p2m_and_initrd_inside_the_mapping() {
        let l = Layout::compute(&LayoutInput {
            v_start: 0xffff_ffff_8000_0000,
            virt_kend: 0xffff_ffff_8010_0123,
            nr_pages: 4096,
            initrd_len: 5000,
            unmapped_initrd: false,
            p2m_base: None,
            is_dom0: false,
        })
        .unwrap();
        assert_eq!(
            l.vinitrd,
            (0xffff_ffff_8010_1000, 0xffff_ffff_8010_1000 + 5000)
        );
        assert_eq!(
            l.vphysmap,
            (0xffff_ffff_8010_3000, 0xffff_ffff_8010_3000 + 4096 * 8)
        );
        assert_eq!(l.vstartinfo.0, 0xffff_ffff_8010_b000);
        assert_eq!(l.vstartinfo.1 - l.vstartinfo.0, START_INFO_SIZE);
        assert_eq!(l.pfn_of(l.vstartinfo.0), 0x10b);
        // A domU's xenstore and console pages follow start_info, then the page tables.
        assert_eq!(l.vspecial, (0xffff_ffff_8010_c000, 0xffff_ffff_8010_e000));
        assert_eq!(l.vpt.0, l.vspecial.1);
        assert_eq!(l.vstack.1 - l.vstack.0, PAGE);
    }

    #[test]
    fn too_small_is_refused() {
        let i = LayoutInput {
            v_start: 0xffff_ffff_8000_0000,
            virt_kend: 0xffff_ffff_8100_0000,
            nr_pages: 1000,
            initrd_len: 0,
            unmapped_initrd: true,
            p2m_base: None,
            is_dom0: true,
        };
        assert!(Layout::compute(&i).is_none());
        assert!(
            Layout::compute(&LayoutInput {
                nr_pages: 100_000,
                ..i
            })
            .is_some()
        );
    }
}
