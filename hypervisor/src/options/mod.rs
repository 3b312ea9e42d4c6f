//! The hypervisor command line, in Xen 4.17's syntax.
//!
//! Users boot Xenolith exactly like Xen, so the option names, value syntax, defaults and even
//! the diagnostics are Xen's. Each rule names the Xen source it comes from; the general ones:
//!
//! * [`cook_cmdline`] and the ` -- ` split: `xen/arch/x86/setup.c` (`cmdline_cook`,
//!   `loader_is_grub2`, `__start_xen`).
//! * Tokenising, `no-` negation, booleans and diagnostics: `xen/common/kernel.c`
//!   (`parse_params`, `parse_bool`). Options are separated by spaces only (not tabs), quotes
//!   mean nothing, and a repeated option is simply applied again, so the last one wins.
//! * Sizes and numbers: `parse_size_and_unit` and `simple_strtoull` (`xen/common/lib.c`),
//!   ported in the private `num` module.
//!
//! Per-option rules live with their types: [`Dom0Mem`] and [`VcpuRange`] (`dom0_build.c`),
//! [`ConsoleSet`] and [`LogLevels`] (`console.c`), [`SerialConfig`] (`ns16550.c`), [`Sched`]
//! (`sched/core.c`; Xenolith has `credit`, its default, and `rr`), [`Gnttab`]
//! (`grant_table.c`).
//!
//! Xenolith extensions, none of which changes the meaning of a line Xen accepts: option names
//! match with `-` and `_` interchangeable and `no_` negates like `no-` (Xen 4.17 compares names
//! with `strcmp` and knows only `no-`), `console=pc` means `vga`, `max_grant_frames=` and
//! `max_maptrack_frames=` (the `xl.cfg` names) as aliases of `gnttab_max_frames=` and
//! `gnttab_max_maptrack_frames=`, and the test-only `selftest=` option. Where Xen would silently act on nonsense (numeric overflow, `dom0_max_vcpus=4-2`),
//! we report the value and ignore it; see the individual parsers.

mod console;
mod dom0;
#[cfg(test)]
mod fuzz_tests;
mod gnttab;
mod num;
mod sched;
mod serial;
#[cfg(test)]
mod tests;

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

pub use console::{CONRING_STATIC_SIZE, ComPort, ConsoleSet, Disposition, LogLevel, LogLevels};
pub use dom0::{DOM0_MAX_VIRT_CPUS, Dom0Mem, MemSize, VcpuRange};
pub use gnttab::Gnttab;
#[cfg(target_os = "none")]
pub use gnttab::booted as gnttab_booted;
pub use sched::Sched;
pub use serial::{Baud, DEFAULT_BASE_BAUD, Parity, SerialConfig};

/// Xen's `EINVAL`: the value is malformed.
pub const EINVAL: i32 = 22;
/// Xen's `EOVERFLOW`: the value does not fit.
pub const EOVERFLOW: i32 = 75;

/// The effective settings of every option Xenolith understands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// `dom0_mem=`: dom0's memory size and bounds.
    pub dom0_mem: Dom0Mem,
    /// `dom0_max_vcpus=`: bounds on dom0's vCPU count.
    pub dom0_max_vcpus: VcpuRange,
    /// `dom0_vcpus_pin`: pin dom0 vCPU n to pCPU n. Default false.
    pub dom0_vcpus_pin: bool,
    /// `dom0=pvh` (true) or `dom0=pv` (false, the default): how dom0 is built.
    pub dom0_pvh: bool,
    /// `console=`: where Xen's own output goes. Default `vga`.
    pub console: ConsoleSet,
    /// `com1=`: COM1 configuration; `None` if the port is not set up.
    pub com1: Option<SerialConfig>,
    /// `com2=`: COM2 configuration; `None` if the port is not set up.
    pub com2: Option<SerialConfig>,
    /// `loglvl=`: thresholds for Xen's own messages. Default `warning`.
    pub loglvl: LogLevels,
    /// `guest_loglvl=`: thresholds for guest-caused messages. Default `none/warning`.
    pub guest_loglvl: LogLevels,
    /// `noreboot`: stay halted after a crash instead of rebooting. Default false.
    pub noreboot: bool,
    /// `sched=`: the scheduler. Default [`Sched::DEFAULT`] (`credit`).
    pub sched: Sched,
    /// `conring_size=`: requested console ring size in bytes; 0 (the default) lets Xen size
    /// it from the CPU count. See [`Options::effective_conring_size`].
    pub conring_size: usize,
    /// `gnttab_max_frames=`, `gnttab_max_maptrack_frames=`, `gnttab=`: grant-table limits.
    /// Default [`Gnttab::XEN_DEFAULT`].
    pub gnttab: Gnttab,
    /// `selftest=`: Xenolith test-only list of self-tests to run (free-form words; the
    /// boot sequence knows `fault`, `conring`, `ud`, `vga`, `svm`, `vmx`, `hvm` (SVM or VMX,
    /// whichever CPUID reports), `exit` and `poweroff`).
    pub selftest: Vec<String>,
    /// Everything after the first ` -- `: appended to dom0's command line. Leading spaces are
    /// dropped (Xen keeps one, as the separator it appends with).
    pub dom0_extra: String,
}

impl Default for Options {
    /// Xen 4.17's defaults (release build, x86).
    fn default() -> Self {
        Options {
            dom0_mem: Dom0Mem::default(),
            dom0_max_vcpus: VcpuRange::default(),
            dom0_vcpus_pin: false,
            dom0_pvh: false,
            console: ConsoleSet::default(),
            com1: None,
            com2: None,
            loglvl: LogLevels::XEN_DEFAULT,
            guest_loglvl: LogLevels::GUEST_DEFAULT,
            noreboot: false,
            sched: Sched::DEFAULT,
            conring_size: 0,
            gnttab: Gnttab::XEN_DEFAULT,
            selftest: Vec::new(),
            dom0_extra: String::new(),
        }
    }
}

impl Options {
    /// The console ring size, in bytes, Xen would allocate on a machine with `nr_cpus`
    /// present CPUs: the `conring_size=` request (or `nr_cpus` × 2 KiB at the default
    /// `loglvl`, more with a higher one), at least 16 KiB, rounded up to a power-of-two number
    /// of 4 KiB pages (`console_init_postirq`, `console_init_ring`).
    pub fn effective_conring_size(&self, nr_cpus: u32) -> usize {
        console::effective_conring_size(self.conring_size, nr_cpus, self.loglvl.lower)
    }
}

/// A problem found on the command line. The option is ignored (or, for `console=`, the one
/// entry); parsing carries on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// What went wrong.
    pub kind: DiagnosticKind,
    /// The option as written, including any `no-` prefix.
    pub option: String,
    /// The offending value (or console entry).
    pub value: String,
}

/// The kinds of [`Diagnostic`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DiagnosticKind {
    /// No such option (Xen: `parameter "foo" unknown!`).
    UnknownParameter,
    /// The value was rejected; `rc` is Xen's negative errno (Xen: `parameter "x" has invalid
    /// value "y", rc=-22!`).
    InvalidValue {
        /// Negative errno, [`EINVAL`] or [`EOVERFLOW`].
        rc: i32,
    },
    /// A `console=` entry Xen does not know (Xen: `Bad console= option 'foo'`).
    BadConsole,
    /// A `console=` entry Xen knows but Xenolith does not implement (e.g. `dbgp`); ignored.
    UnsupportedConsole,
    /// The `com1=`/`com2=` value was rejected; `message` is Xen's (`ERROR: ...`). The port
    /// stays unconfigured.
    Serial {
        /// The complete message.
        message: String,
    },
    /// `sched=` names no scheduler Xenolith has (Xen: `Could not find scheduler: foo`, then
    /// `Using '<name>' (<opt_name>)` for the default it falls back to).
    UnknownScheduler,
}

impl Diagnostic {
    fn new(kind: DiagnosticKind, option: &str, value: &str) -> Diagnostic {
        Diagnostic {
            kind,
            option: option.to_string(),
            value: value.to_string(),
        }
    }
}

impl fmt::Display for Diagnostic {
    /// The message Xen prints for the same problem (Xenolith's own wording where Xen has
    /// none).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (opt, val) = (&self.option, &self.value);
        match &self.kind {
            DiagnosticKind::UnknownParameter => write!(f, "parameter \"{opt}\" unknown!"),
            DiagnosticKind::InvalidValue { rc } => {
                write!(
                    f,
                    "parameter \"{opt}\" has invalid value \"{val}\", rc={rc}!"
                )
            }
            DiagnosticKind::BadConsole => write!(f, "Bad console= option '{val}'"),
            DiagnosticKind::UnsupportedConsole => {
                write!(
                    f,
                    "console= option '{val}' is not supported by Xenolith, ignored"
                )
            }
            DiagnosticKind::Serial { message } => f.write_str(message),
            DiagnosticKind::UnknownScheduler => write!(
                f,
                "Could not find scheduler: {val}\nUsing '{}' ({})",
                Sched::DEFAULT.name(),
                Sched::DEFAULT.opt_name()
            ),
        }
    }
}

/// Xen's `cmdline_cook`: drops leading spaces and, unless the bootloader is GRUB 2, the first
/// word (the image path the loader put there).
///
/// GRUB 2 (loader name containing `GRUB ` followed by anything but `0`) passes only the
/// arguments; GRUB Legacy (`GNU GRUB 0.97`), PXELINUX's `mboot.c32`, QEMU's `-kernel` and an
/// unnamed loader (`None`, Xen's `"unknown"`) put the image path first. Not modelled: Xen also
/// keeps the first word when it runs as a Xen guest (PVH) or, in later releases, when started
/// by its own EFI loader.
pub fn cook_cmdline<'a>(raw: &'a str, loader_name: Option<&str>) -> &'a str {
    let p = raw.trim_start_matches(' ');
    if loader_is_grub2(loader_name.unwrap_or("unknown")) {
        return p;
    }
    p.find(' ').map_or("", |i| &p[i..]).trim_start_matches(' ')
}

/// Xen's `loader_is_grub2`: `GRUB1="GNU GRUB 0.xx"; GRUB2="GRUB 1.xx"`.
fn loader_is_grub2(name: &str) -> bool {
    name.find("GRUB ")
        .is_some_and(|i| name.as_bytes().get(i + 5) != Some(&b'0'))
}

/// Parses a cooked command line (see [`cook_cmdline`]) into the effective [`Options`] and the
/// problems found, in the order Xen would report them.
///
/// Text after the first ` -- ` goes to [`Options::dom0_extra`] unparsed. Unknown options and
/// bad values are reported and ignored; the option keeps its previous value (its default if
/// it was not given before).
pub fn parse(cmdline: &str) -> (Options, Vec<Diagnostic>) {
    // `__start_xen`: `strstr(cmdline, " -- ")`, so a line starting with `-- ` has no dom0 part.
    let (xen, extra) = match cmdline.find(" -- ") {
        Some(i) => (&cmdline[..i], cmdline[i + 4..].trim_start_matches(' ')),
        None => (cmdline, ""),
    };
    let mut st = State::new();
    for token in xen.split(' ').filter(|t| !t.is_empty()) {
        st.apply(token);
    }
    st.finish(extra)
}

/// The options Xenolith knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Opt {
    Dom0Mem,
    Dom0MaxVcpus,
    Dom0VcpusPin,
    Console,
    Com1,
    Com2,
    Loglvl,
    GuestLoglvl,
    Noreboot,
    Sched,
    ConringSize,
    GnttabMaxFrames,
    GnttabMaxMaptrackFrames,
    Gnttab,
    Selftest,
    Placeholder,
    Dom0,
    Dom0Iommu,
}

/// How `parse_params` treats an option's value (Xen's `OPT_*` types).
enum Ty {
    /// `boolean_param`.
    Bool,
    /// `string_param`: stored raw, interpreted once after the whole line is read; `no-` is
    /// ignored.
    Str,
    /// `size_param` into a 32-bit variable; `no-` is ignored.
    Size,
    /// `integer_param` into an `unsigned int`; `no-` is ignored.
    Uint,
    /// `custom_param`: `no-` is allowed only without a value and passes `no`.
    Custom,
    /// `ignore_param`: accepted and dropped.
    Ignore,
}

/// Canonical names, with the Xen source that registers each.
const OPTIONS: [(&str, Opt); 20] = [
    ("dom0-iommu", Opt::Dom0Iommu), // drivers/passthrough/x86/iommu.c custom_param
    ("dom0", Opt::Dom0),            // x86/dom0_build.c custom_param
    ("dom0_mem", Opt::Dom0Mem),     // x86/dom0_build.c custom_param
    ("dom0_max_vcpus", Opt::Dom0MaxVcpus), // x86/dom0_build.c custom_param
    ("dom0_vcpus_pin", Opt::Dom0VcpusPin), // common/sched/core.c boolean_param
    ("console", Opt::Console),      // drivers/char/console.c string_param
    ("com1", Opt::Com1),            // drivers/char/ns16550.c string_param
    ("com2", Opt::Com2),            // drivers/char/ns16550.c string_param
    ("loglvl", Opt::Loglvl),        // drivers/char/console.c custom_runtime_param
    ("guest_loglvl", Opt::GuestLoglvl), // drivers/char/console.c custom_runtime_param
    ("noreboot", Opt::Noreboot),    // x86/shutdown.c boolean_param
    ("sched", Opt::Sched),          // common/sched/core.c string_param
    ("conring_size", Opt::ConringSize), // drivers/char/console.c size_param
    ("gnttab_max_frames", Opt::GnttabMaxFrames), // common/grant_table.c integer_runtime_param
    ("gnttab_max_maptrack_frames", Opt::GnttabMaxMaptrackFrames), // (the same)
    ("max_grant_frames", Opt::GnttabMaxFrames), // Xenolith alias (the xl.cfg name)
    ("max_maptrack_frames", Opt::GnttabMaxMaptrackFrames), // Xenolith alias (the xl.cfg name)
    ("gnttab", Opt::Gnttab),        // common/grant_table.c custom_param
    ("selftest", Opt::Selftest),    // Xenolith only
    ("placeholder", Opt::Placeholder), // x86/setup.c ignore_param (GRUB workaround)
];

impl Opt {
    fn ty(self) -> Ty {
        match self {
            Opt::Dom0VcpusPin | Opt::Noreboot => Ty::Bool,
            Opt::Console | Opt::Com1 | Opt::Com2 | Opt::Sched => Ty::Str,
            Opt::ConringSize => Ty::Size,
            Opt::GnttabMaxFrames | Opt::GnttabMaxMaptrackFrames => Ty::Uint,
            Opt::Dom0Mem
            | Opt::Dom0MaxVcpus
            | Opt::Loglvl
            | Opt::GuestLoglvl
            | Opt::Gnttab
            | Opt::Dom0
            | Opt::Dom0Iommu
            | Opt::Selftest => Ty::Custom,
            Opt::Placeholder => Ty::Ignore,
        }
    }

    /// Finds an option by name, `-` and `_` being equal (a Xenolith extension).
    fn lookup(name: &str) -> Option<Opt> {
        let norm = |c: u8| if c == b'-' { b'_' } else { c };
        OPTIONS.iter().find_map(|&(canon, opt)| {
            (canon.len() == name.len()
                && canon
                    .bytes()
                    .zip(name.bytes())
                    .all(|(a, b)| norm(a) == norm(b)))
            .then_some(opt)
        })
    }
}

/// A comma list of the boolean sub-options `known` (`x`, `no-x`, `x=<bool>`), as Xen's
/// `parse_dom0_iommu_param`; any other item makes the option invalid.
fn parse_bool_list(value: &str, known: &[&str]) -> Result<(), i32> {
    let ok = value.split(',').all(|item| {
        let (name, val) = item.split_once('=').unwrap_or((item, ""));
        let bare = name.strip_prefix("no-").unwrap_or(name);
        known.contains(&bare) && (val.is_empty() || parse_bool(val).is_some())
    });
    if ok { Ok(()) } else { Err(EINVAL) }
}

/// Xen's `parse_dom0_param`: a comma list of `pv`, `pvh` and the mode's boolean
/// sub-options (`shadow`, `verbose`, `cpuid-faulting`, `msr-relaxed`, which Xenolith accepts
/// and ignores). An unknown item makes the option invalid but the others still apply.
fn parse_dom0(value: &str, pvh: &mut bool) -> Result<(), i32> {
    let mut rc = Ok(());
    for item in value.split(',') {
        let (name, val) = item.split_once('=').unwrap_or((item, ""));
        let bare = name.strip_prefix("no-").unwrap_or(name);
        match name {
            "pv" if val.is_empty() => *pvh = false,
            "pvh" if val.is_empty() => *pvh = true,
            _ if matches!(
                bare,
                "shadow" | "verbose" | "cpuid-faulting" | "msr-relaxed"
            ) && (val.is_empty() || parse_bool(val).is_some()) => {}
            _ => rc = Err(EINVAL),
        }
    }
    rc
}

/// Xen's `parse_bool`: exact, case-sensitive words.
fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "on" | "yes" | "true" | "enable" => Some(true),
        "0" | "no" | "off" | "false" | "disable" => Some(false),
        _ => None,
    }
}

/// Parsing state: the options so far, plus the raw strings of string options, which Xen
/// interprets only at boot, after the whole line has been read.
struct State {
    opts: Options,
    console: String,
    com: [String; 2],
    sched: String,
    diags: Vec<Diagnostic>,
}

impl State {
    fn new() -> State {
        State {
            opts: Options::default(),
            console: String::from(console::DEFAULT_CONSOLE),
            com: [String::new(), String::new()],
            sched: String::from(Sched::DEFAULT.opt_name()),
            diags: Vec::new(),
        }
    }

    /// Xen's `parse_params` for one space-delimited option.
    fn apply(&mut self, token: &str) {
        let (key, value) = token.split_once('=').unwrap_or((token, ""));
        let (negated, name) = match key.strip_prefix("no-").or_else(|| key.strip_prefix("no_")) {
            Some(name) => (true, name),
            None => (false, key),
        };
        let Some(opt) = Opt::lookup(name) else {
            self.diag(DiagnosticKind::UnknownParameter, key, "");
            return;
        };
        match opt.ty() {
            Ty::Bool => {
                // A bare name, or `name=` with nothing after it, means true.
                let val = if value.is_empty() {
                    Some(true)
                } else {
                    parse_bool(value)
                };
                match val {
                    // `no-x=0` is true: Xen inverts the prefix's sense rather than rejecting.
                    Some(v) => *self.bool_slot(opt) = v != negated,
                    None => self.invalid(key, value, EINVAL),
                }
            }
            Ty::Str => *self.str_slot(opt) = value.to_string(),
            Ty::Size => match num::parse_size_and_unit(value) {
                Ok((n, "")) => match u32::try_from(n) {
                    // `opt_conring_size` is a `uint32_t`: `assign_integer_param` refuses more.
                    Ok(n) => self.opts.conring_size = n as usize,
                    Err(_) => self.invalid(key, value, EOVERFLOW),
                },
                Ok(_) => self.invalid(key, value, EINVAL),
                Err(num::Overflow) => self.invalid(key, value, EOVERFLOW),
            },
            Ty::Uint => match gnttab::parse_uint_param(value) {
                Ok(n) if opt == Opt::GnttabMaxFrames => self.opts.gnttab.max_frames = n,
                Ok(n) => self.opts.gnttab.max_maptrack_frames = n,
                Err(rc) => self.invalid(key, value, rc),
            },
            Ty::Custom => {
                if negated && !value.is_empty() {
                    self.invalid(key, value, EINVAL);
                    return;
                }
                let value = if negated { "no" } else { value };
                let opts = &mut self.opts;
                let result = match opt {
                    Opt::Dom0Mem => opts.dom0_mem.parse_into(value),
                    Opt::Dom0MaxVcpus => opts.dom0_max_vcpus.parse_into(value),
                    Opt::Loglvl => LogLevels::parse(value).map(|l| opts.loglvl = l),
                    Opt::GuestLoglvl => LogLevels::parse(value).map(|l| opts.guest_loglvl = l),
                    Opt::Gnttab => opts.gnttab.parse_into(value),
                    Opt::Dom0 => parse_dom0(value, &mut opts.dom0_pvh),
                    // Xenolith has no IOMMU support: the settings are checked and ignored
                    // (`none` is what a PVH dom0 needs on a machine without one).
                    Opt::Dom0Iommu => parse_bool_list(
                        value,
                        &[
                            "passthrough",
                            "strict",
                            "map-inclusive",
                            "map-reserved",
                            "none",
                        ],
                    ),
                    Opt::Selftest => {
                        // `no-selftest` clears the list; otherwise the last list wins.
                        opts.selftest = if negated {
                            Vec::new()
                        } else {
                            value
                                .split(',')
                                .filter(|w| !w.is_empty())
                                .map(ToString::to_string)
                                .collect()
                        };
                        Ok(())
                    }
                    _ => unreachable!("not a custom option"),
                };
                if let Err(rc) = result {
                    self.invalid(key, value, rc);
                }
            }
            Ty::Ignore => {}
        }
    }

    fn bool_slot(&mut self, opt: Opt) -> &mut bool {
        match opt {
            Opt::Dom0VcpusPin => &mut self.opts.dom0_vcpus_pin,
            Opt::Noreboot => &mut self.opts.noreboot,
            _ => unreachable!("not a boolean option"),
        }
    }

    fn str_slot(&mut self, opt: Opt) -> &mut String {
        match opt {
            Opt::Console => &mut self.console,
            Opt::Com1 => &mut self.com[0],
            Opt::Com2 => &mut self.com[1],
            Opt::Sched => &mut self.sched,
            _ => unreachable!("not a string option"),
        }
    }

    fn diag(&mut self, kind: DiagnosticKind, option: &str, value: &str) {
        self.diags.push(Diagnostic::new(kind, option, value));
    }

    fn invalid(&mut self, option: &str, value: &str, errno: i32) {
        self.diag(DiagnosticKind::InvalidValue { rc: -errno }, option, value);
    }

    /// Interprets the string options in Xen's boot order: the UARTs (`ns16550_init`, which
    /// needs `console=` to pick a default baud), then `console=` (`console_init_preirq`), then
    /// `sched=` (`scheduler_init`).
    fn finish(mut self, extra: &str) -> (Options, Vec<Diagnostic>) {
        let ports = [ComPort::Com1, ComPort::Com2];
        let mut configs = [None, None];
        for (i, port) in ports.into_iter().enumerate() {
            let has = console::console_has(&self.console, port.name());
            match serial::parse_port(port, &self.com[i], has) {
                Ok(cfg) => configs[i] = cfg,
                Err(message) => {
                    let raw = self.com[i].clone();
                    self.diag(DiagnosticKind::Serial { message }, port.name(), &raw);
                }
            }
        }
        [self.opts.com1, self.opts.com2] = configs;

        let registered = [configs[0].is_some(), configs[1].is_some()];
        self.opts.console = ConsoleSet::parse(&self.console, registered, &mut self.diags);

        self.opts.sched = match Sched::from_opt_name(&self.sched) {
            Some(s) => s,
            None => {
                let raw = self.sched.clone();
                self.diag(DiagnosticKind::UnknownScheduler, "sched", &raw);
                Sched::DEFAULT
            }
        };
        // The scheduler takes its policy from here before any vCPU is placed.
        #[cfg(target_os = "none")]
        crate::sched::select(self.opts.sched);

        self.opts.dom0_extra = extra.to_string();
        // The domain builder takes the grant-table limits from here.
        #[cfg(target_os = "none")]
        gnttab::record(&self.opts.gnttab);
        (self.opts, self.diags)
    }
}
