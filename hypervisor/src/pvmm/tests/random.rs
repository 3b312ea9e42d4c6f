//! Deterministic random operation sequences: after every operation the reference counts must
//! match the table contents ([`check_invariants`]), a failed operation must change no count,
//! and tearing everything down must return every count to its start.

use super::*;

/// xorshift64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// Frames per domain the operations use: few enough that they collide a lot.
const POOL: u64 = 20;

/// Flags a well-behaved guest uses.
const GOOD_FLAGS: &[u64] = &[
    0,
    P,
    P,
    P | RW,
    P | RW,
    P | RW | A | D,
    P | U,
    P | RW | U,
    P | A | NX,
    P | U | G,
];
/// Flags refused at some or all levels.
const BAD_FLAGS: &[u64] = &[
    P | PCD,
    P | PAGE_PAT | RW,
    P | RW | PAGE_GNTTAB,
    P | PSE,
    RW | A,
];
const INDEXES: &[usize] = &[0, 0, 1, 1, 2, 3, 7, 256, 258, 272, 511];
const DOMS: [DomId; 3] = [DOM0, DOM1, DOM2];

/// The role a pool frame plays in a well-behaved guest: frames 0-2 of a domain's pool are its
/// L4s, 3-5 L3s, 6-9 L2s, 10-14 L1s, 15-19 data (`None`).
fn role(mfn: Mfn) -> Option<Level> {
    let i = mfn.checked_sub(dom_base(DOM0))? % 96;
    match i {
        0..3 => Some(Level::L4),
        3..6 => Some(Level::L3),
        6..10 => Some(Level::L2),
        10..15 => Some(Level::L1),
        _ => None,
    }
}

#[derive(Default, Debug)]
struct Stats {
    /// Successes per operation kind.
    ok: [u32; 12],
    /// Failures per operation kind.
    err: [u32; 12],
    /// Most validated tables of each level (L1..L4) seen at once.
    max_validated: [usize; 4],
    /// Most linear entries seen at once.
    max_linear: i64,
}

struct World {
    env: FakeEnv,
    init: Vec<PageInfo>,
    rng: Rng,
    kernel: [Mfn; 3],
    user: [Mfn; 3],
    gdts: Vec<(Vec<Mfn>, u32)>,
    stats: Stats,
}

impl World {
    fn new(seed: u64) -> Self {
        let env = FakeEnv::new();
        let init = env.pages.clone();
        World {
            env,
            init,
            rng: Rng(seed),
            kernel: [0; 3],
            user: [0; 3],
            gdts: Vec::new(),
            stats: Stats::default(),
        }
    }

    fn roots(&self) -> Vec<Mfn> {
        let mut r: Vec<Mfn> = self
            .kernel
            .iter()
            .chain(&self.user)
            .copied()
            .filter(|&m| m != 0)
            .collect();
        for (frames, _) in &self.gdts {
            r.extend(frames);
        }
        r
    }

    /// A frame: usually one of `d`'s pool, sometimes another domain's, sometimes special.
    fn frame(&mut self, d: DomId) -> Mfn {
        match self.rng.below(20) {
            0 => dom_base(self.rng.pick(&DOMS)) + self.rng.below(POOL),
            1 => self
                .rng
                .pick(&[XEN_PRIVATE, RO_M2P, 5, MMIO, FREE_FRAME, 0]),
            _ => dom_base(d) + self.rng.below(POOL),
        }
    }

    /// A frame of `d`'s pool in `role` (see [`role`]), `None` for data frames.
    fn frame_in_role(&mut self, d: DomId, role: Option<Level>) -> Mfn {
        let range = match role {
            Some(Level::L4) => 0..3,
            Some(Level::L3) => 3..6,
            Some(Level::L2) => 6..10,
            Some(Level::L1) => 10..15,
            None => 15..POOL,
        };
        dom_base(d) + range.start + self.rng.below(range.end - range.start)
    }

    fn flags(&mut self) -> u64 {
        if self.rng.below(16) == 0 {
            self.rng.pick(BAD_FLAGS)
        } else {
            self.rng.pick(GOOD_FLAGS)
        }
    }

    /// A new entry for `table`: mostly what a guest would write there (the next level's
    /// frames, or read-only same-level frames for linear mappings), sometimes anything.
    fn entry_for(&mut self, table: Mfn, d: DomId) -> u64 {
        if self.rng.below(10) == 0 {
            let f = self.frame(d);
            return pte(f, self.flags());
        }
        match role(table) {
            Some(Level::L1) | None => {
                if self.rng.below(6) == 0 {
                    // Guests map their own tables read-only.
                    let f = dom_base(d) + self.rng.below(POOL);
                    pte(f, self.rng.pick(&[P, P | U, P | A]))
                } else {
                    let f = self.frame_in_role(d, None);
                    pte(f, self.flags())
                }
            }
            Some(level) => {
                if self.rng.below(25) == 0 {
                    let f = self.frame_in_role(d, Some(level));
                    pte(f, self.rng.pick(&[P, P | A, P | RW]))
                } else {
                    let f = self.frame_in_role(d, level.lower());
                    pte(
                        f,
                        self.rng
                            .pick(&[0, P, P | RW, P | RW | A | D, P | RW | U, P | A | NX]),
                    )
                }
            }
        }
    }

    /// A table of `d` to update: mostly a pool frame.
    fn table(&mut self, d: DomId) -> Mfn {
        if self.rng.below(20) == 0 {
            dom_base(self.rng.pick(&DOMS)) + self.rng.below(POOL)
        } else {
            dom_base(d) + self.rng.below(POOL)
        }
    }

    /// A pin: mostly a frame of some table role at its level.
    fn pin_target(&mut self, d: DomId) -> (Mfn, Level) {
        let level = self.rng.pick(&[
            Level::L1,
            Level::L2,
            Level::L2,
            Level::L3,
            Level::L4,
            Level::L4,
        ]);
        if self.rng.below(5) == 0 {
            let f = self.frame(d);
            (
                f,
                self.rng.pick(&[Level::L1, Level::L2, Level::L3, Level::L4]),
            )
        } else {
            (self.frame_in_role(d, Some(level)), level)
        }
    }

    /// One random operation; returns its kind and whether it succeeded.
    fn step(&mut self) -> (usize, bool) {
        let d = self.rng.pick(&DOMS);
        let di = d as usize;
        let op = self.rng.below(100);
        match op {
            0..40 => {
                let table = self.table(d);
                let idx = self.rng.pick(INDEXES) as u64;
                let cmd = self.rng.pick(&[
                    0,
                    0,
                    0,
                    MMU_PT_UPDATE_PRESERVE_AD,
                    MMU_PT_UPDATE_NO_TRANSLATE,
                    5,
                ]);
                let val = self.entry_for(table, d);
                let env = &mut self.env;
                (
                    0,
                    mmu_pt_update(env, MmuCtx::local(d), (table << 12) + idx * 8 + cmd, val)
                        .is_ok(),
                )
            }
            40..55 => {
                let (f, level) = self.pin_target(d);
                (1, pin_table(&mut self.env, d, f, level).is_ok())
            }
            55..63 => {
                let f = self.frame(d);
                (2, unpin_table(&mut self.env, d, f).is_ok())
            }
            63..68 => {
                let f = if self.rng.below(4) == 0 {
                    self.frame(d)
                } else {
                    self.frame_in_role(d, Some(Level::L4))
                };
                let mut cur = self.kernel[di];
                let r = new_baseptr(&mut self.env, d, d, &mut cur, f);
                self.kernel[di] = cur;
                (3, r.is_ok())
            }
            68..71 => {
                let f = match self.rng.below(4) {
                    0 => 0,
                    1 => self.frame(d),
                    _ => self.frame_in_role(d, Some(Level::L4)),
                };
                let mut cur = self.user[di];
                let r = new_user_baseptr(&mut self.env, d, d, &mut cur, f);
                self.user[di] = cur;
                (4, r.is_ok())
            }
            71..79 => {
                let l1 = if self.rng.below(4) == 0 {
                    self.frame(d)
                } else {
                    self.frame_in_role(d, Some(Level::L1))
                };
                let bytes = self.rng.pick(&[8, 8, 8, 4, 2]);
                let offset =
                    self.rng.pick(INDEXES) * 8 + self.rng.below(8 / bytes as u64) as usize * bytes;
                let val = self.entry_for(l1, d);
                let old = match self.rng.below(3) {
                    0 => None,
                    1 if l1 < NR_FRAMES => Some(self.env.get(l1, offset / 8) >> ((offset % 8) * 8)),
                    _ => Some(self.rng.next()),
                };
                let r = ptwr_emulated_update(&mut self.env, d, l1, offset, val, bytes, old);
                (5, r == Ptwr::Okay)
            }
            79..84 => {
                let f = if self.rng.below(4) == 0 {
                    self.frame(d)
                } else {
                    self.frame_in_role(d, None)
                };
                let off = self.rng.pick(INDEXES) as u64 * 8;
                let desc = self.rng.pick(&[
                    0,
                    0x00af_9a00_0000_ffff,
                    0x0000_8900_0000_0067,
                    0x00cf_f200_0000_ffff,
                ]);
                (
                    6,
                    update_descriptor(&mut self.env, d, (f << 12) + off, desc).is_ok(),
                )
            }
            84..88 => {
                if self.rng.below(2) == 0 && !self.gdts.is_empty() {
                    let i = self.rng.below(self.gdts.len() as u64) as usize;
                    let (frames, entries) = self.gdts.swap_remove(i);
                    put_gdt_frames(&mut self.env, &frames, entries);
                    (7, true)
                } else {
                    let n = self.rng.below(3);
                    let frames: Vec<Mfn> = (0..n)
                        .map(|_| {
                            if self.rng.below(4) == 0 {
                                self.frame(d)
                            } else {
                                self.frame_in_role(d, None)
                            }
                        })
                        .collect();
                    let entries = (n as u32 * 512).saturating_sub(self.rng.below(300) as u32);
                    let ok = get_gdt_frames(&mut self.env, d, &frames, entries).is_ok();
                    if ok {
                        self.gdts.push((frames, entries));
                    }
                    (7, ok)
                }
            }
            88..93 => {
                // Foreign page owners: dom0 for dom1 (allowed by xsm_priv_mapping), dom2
                // naming dom0 or DOMID_IO.
                let (caller, pg_owner) = self.rng.pick(&[
                    (DOM0, DOM1),
                    (DOM2, DOM0),
                    (DOM0, DOMID_IO),
                    (DOM1, DOMID_IO),
                    (DOM0, DOMID_XEN),
                ]);
                let ctx = MmuCtx {
                    caller,
                    pt_owner: caller,
                    pg_owner,
                };
                let table = if self.rng.below(4) == 0 {
                    dom_base(caller) + self.rng.below(POOL)
                } else {
                    self.frame_in_role(caller, Some(Level::L1))
                };
                let idx = self.rng.pick(INDEXES) as u64;
                let target = match pg_owner {
                    DOMID_XEN => RO_M2P,
                    DOMID_IO => MMIO,
                    o => dom_base(o) + self.rng.below(POOL),
                };
                let val = pte(target, self.flags());
                (
                    8,
                    mmu_pt_update(&mut self.env, ctx, (table << 12) + idx * 8, val).is_ok(),
                )
            }
            93..96 => {
                let l1 = if self.rng.below(4) == 0 {
                    self.frame(d)
                } else {
                    self.frame_in_role(d, Some(Level::L1))
                };
                let idx = self.rng.pick(INDEXES);
                let val = self.entry_for(l1, d);
                (
                    9,
                    update_va_mapping_l1(&mut self.env, MmuCtx::local(d), l1, idx, val).is_ok(),
                )
            }
            _ => {
                if self.rng.below(2) == 0 {
                    release_baseptr(&mut self.env, &mut self.kernel[di]);
                } else {
                    release_baseptr(&mut self.env, &mut self.user[di]);
                }
                (10, true)
            }
        }
    }

    fn run(&mut self, ops: usize) {
        for n in 0..ops {
            let before = self.env.counts();
            let (kind, ok) = self.step();
            if ok {
                self.stats.ok[kind] += 1;
            } else {
                self.stats.err[kind] += 1;
                assert_eq!(
                    self.env.counts(),
                    before,
                    "failed op {n} (kind {kind}) changed counts"
                );
            }
            if n % 10 == 0 || n + 1 == ops {
                check_invariants(&self.env, &self.init, &self.roots());
                let mut validated = [0; 4];
                let mut linear = 0;
                for pg in &self.env.pages {
                    if let (Some(level), true) = (pg.page_type().level(), pg.is_validated()) {
                        validated[level as usize - 1] += 1;
                    }
                    linear += pg.linear_pt_count.max(0) as i64;
                }
                for (max, v) in self.stats.max_validated.iter_mut().zip(validated) {
                    *max = (*max).max(v);
                }
                self.stats.max_linear = self.stats.max_linear.max(linear);
            }
        }
    }

    fn teardown(&mut self) {
        for di in 0..3 {
            release_baseptr(&mut self.env, &mut self.kernel[di]);
            release_baseptr(&mut self.env, &mut self.user[di]);
        }
        for (frames, entries) in core::mem::take(&mut self.gdts) {
            put_gdt_frames(&mut self.env, &frames, entries);
        }
        check_invariants(&self.env, &self.init, &[]);
        for mfn in 0..NR_FRAMES {
            let pg = self.env.pg(mfn);
            if pg.is_pinned() {
                unpin_table(&mut self.env, pg.owner, mfn).unwrap();
            }
        }
        check_invariants(&self.env, &self.init, &[]);
        for (mfn, (pg, init)) in self.env.pages.iter().zip(&self.init).enumerate() {
            assert_eq!(pg.count(), init.count(), "leaked general refs on {mfn:#x}");
            assert_eq!(
                pg.type_count(),
                init.type_count(),
                "leaked type refs on {mfn:#x}"
            );
            assert_eq!(pg.linear_pt_count, 0, "{mfn:#x}");
            if pg.page_type().level().is_some() {
                assert!(!pg.is_validated(), "{mfn:#x} still validated");
            }
        }
    }
}

fn run_seed(seed: u64, ops: usize) -> Stats {
    let mut w = World::new(seed);
    w.run(ops);
    std::println!("seed {seed:#x}: {:?}", w.stats);
    w.teardown();
    w.stats
}

#[test]
fn random_operations_conserve_references() {
    for seed in [0x9e37_79b9_7f4a_7c15, 0x1234_5678_9abc_def1] {
        let stats = run_seed(seed, 10_000);
        // The sequence must exercise the rules, not just bounce off them.
        let ok = &stats.ok;
        assert!(
            ok[0] > 1000,
            "seed {seed:#x}: mmu_update successes {stats:?}"
        );
        assert!(ok[1] > 100, "seed {seed:#x}: pins {stats:?}");
        assert!(ok[2] > 50, "seed {seed:#x}: unpins {stats:?}");
        assert!(
            ok[3] > 20 && ok[4] > 20,
            "seed {seed:#x}: base pointers {stats:?}"
        );
        assert!(ok[5] > 100, "seed {seed:#x}: ptwr {stats:?}");
        assert!(
            ok[6] > 50 && ok[7] > 50,
            "seed {seed:#x}: descriptors {stats:?}"
        );
        assert!(
            ok[8] > 50 && ok[9] > 20,
            "seed {seed:#x}: foreign / va {stats:?}"
        );
        assert!(
            stats.err.iter().sum::<u32>() > 1000,
            "seed {seed:#x}: failures {stats:?}"
        );
        // Whole trees and linear mappings were built along the way.
        assert!(
            stats.max_validated.iter().all(|&n| n >= 3),
            "seed {seed:#x}: {stats:?}"
        );
        assert!(stats.max_linear >= 1, "seed {seed:#x}: {stats:?}");
    }
}
