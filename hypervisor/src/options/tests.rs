//! Tests for the command-line parser. Expected values come from reading the Xen 4.17 sources
//! named in each module, not from running this code.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use super::*;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const TIB: u64 = 1 << 40;

/// Parses `line`, insisting on no diagnostics.
fn opts(line: &str) -> Options {
    let (o, d) = parse(line);
    assert!(d.is_empty(), "{line:?}: unexpected diagnostics {d:?}");
    o
}

/// The diagnostics for `line`, as Xen would print them.
fn messages(line: &str) -> Vec<String> {
    parse(line).1.iter().map(ToString::to_string).collect()
}

fn size(bytes: u64) -> MemSize {
    MemSize {
        bytes,
        percent: 0,
        minus: false,
    }
}

fn invalid(option: &str, value: &str, rc: i32) -> String {
    format!("parameter \"{option}\" has invalid value \"{value}\", rc={rc}!")
}

// ---------------------------------------------------------------------------------------------
// Defaults and general syntax

#[test]
fn defaults_are_xen_4_17_release_defaults() {
    let d = Options::default();
    assert_eq!(d.dom0_mem, Dom0Mem::default());
    assert_eq!(d.dom0_mem.amount, None);
    assert_eq!(
        d.dom0_max_vcpus,
        VcpuRange {
            min: 1,
            max: u32::MAX
        }
    );
    assert!(!d.dom0_vcpus_pin);
    assert_eq!(
        d.console,
        ConsoleSet {
            vga: true,
            serial: None
        }
    );
    assert_eq!(d.com1, None);
    assert_eq!(d.com2, None);
    assert_eq!(d.loglvl, LogLevels { lower: 2, upper: 2 });
    assert_eq!(d.guest_loglvl, LogLevels { lower: 0, upper: 2 });
    assert!(!d.noreboot);
    assert_eq!(d.sched, Sched::Credit);
    assert_eq!(d.conring_size, 0);
    assert_eq!(
        d.gnttab,
        Gnttab {
            max_frames: 64,
            max_maptrack_frames: 1024,
            max_version: 2,
            transitive: true,
            transfer: true,
        }
    );
    assert!(d.selftest.is_empty());
    assert_eq!(d.dom0_extra, "");
    // An empty line, or only spaces, changes nothing.
    assert_eq!(opts(""), d);
    assert_eq!(opts("    "), d);
}

#[test]
fn unknown_options_are_reported_and_parsing_continues() {
    let (o, d) = parse("foo dom0_mem=1G bar=1 no-baz noreboot");
    assert_eq!(o.dom0_mem.amount, Some(size(GIB)));
    assert!(o.noreboot);
    let msgs: Vec<String> = d.iter().map(ToString::to_string).collect();
    assert_eq!(
        msgs,
        [
            "parameter \"foo\" unknown!",
            "parameter \"bar\" unknown!",
            // The key is reported as written, prefix included.
            "parameter \"no-baz\" unknown!",
        ]
    );
    assert_eq!(d[0].kind, DiagnosticKind::UnknownParameter);
    assert_eq!(d[0].option, "foo");
}

#[test]
fn option_names_are_case_sensitive() {
    assert_eq!(messages("NoReboot"), ["parameter \"NoReboot\" unknown!"]);
    assert_eq!(messages("DOM0_MEM=1G"), ["parameter \"DOM0_MEM\" unknown!"]);
}

#[test]
fn dash_and_underscore_are_interchangeable_in_names() {
    type Check = fn(&Options) -> bool;
    let cases: &[(&str, Check)] = &[
        ("dom0-mem=1G", |o| o.dom0_mem.amount == Some(size(GIB))),
        ("dom0_max-vcpus=2", |o| {
            o.dom0_max_vcpus == VcpuRange { min: 2, max: 2 }
        }),
        ("dom0-vcpus-pin", |o| o.dom0_vcpus_pin),
        ("guest-loglvl=all", |o| {
            o.guest_loglvl == LogLevels { lower: 4, upper: 4 }
        }),
        ("conring-size=64K", |o| o.conring_size == 65536),
        ("no_noreboot noreboot", |o| o.noreboot),
    ];
    for (line, check) in cases {
        assert!(check(&opts(line)), "{line}");
    }
    // Only `-`/`_` are folded; other near misses stay unknown.
    assert_eq!(messages("dom0.mem=1G"), ["parameter \"dom0.mem\" unknown!"]);
    assert_eq!(messages("dom0mem=1G"), ["parameter \"dom0mem\" unknown!"]);
}

#[test]
fn only_spaces_separate_options() {
    // Runs of spaces, leading and trailing spaces are fine.
    let o = opts("   noreboot    dom0_mem=1G   ");
    assert!(o.noreboot);
    assert_eq!(o.dom0_mem.amount, Some(size(GIB)));
    // A tab is part of the option, as in Xen.
    assert_eq!(
        messages("noreboot\tdom0_vcpus_pin"),
        ["parameter \"noreboot\tdom0_vcpus_pin\" unknown!"]
    );
    // Spaces around `=` split the option into three.
    assert_eq!(
        messages("dom0_mem = 1G"),
        [
            invalid("dom0_mem", "", -22),
            "parameter \"\" unknown!".to_string(),
            "parameter \"1G\" unknown!".to_string(),
        ]
    );
}

#[test]
fn quotes_are_not_special() {
    // Bootloaders strip quoting; any quote that reaches Xen is part of the value.
    let (o, d) = parse("dom0_mem=\"512M\" console=\"com1\" sched=\"credit\"");
    assert_eq!(o.dom0_mem, Dom0Mem::default());
    assert_eq!(
        o.console,
        ConsoleSet {
            vga: false,
            serial: None
        }
    );
    assert_eq!(o.sched, Sched::DEFAULT);
    let msgs: Vec<String> = d.iter().map(ToString::to_string).collect();
    assert_eq!(
        msgs,
        [
            invalid("dom0_mem", "\"512M\"", -22),
            "Bad console= option '\"com1\"'".to_string(),
            "Could not find scheduler: \"credit\"\nUsing 'SMP Credit Scheduler' (credit)"
                .to_string(),
        ]
    );
}

#[test]
fn value_may_contain_equals_signs() {
    // Only the first `=` separates name and value.
    let o = opts("com1=baud=57600,io-base=0x2f8");
    assert_eq!(o.com1.unwrap().baud, Baud::Rate(57600));
    assert_eq!(o.com1.unwrap().io_base, 0x2f8);
}

#[test]
fn placeholder_is_accepted_and_ignored() {
    // x86 setup.c `ignore_param("placeholder")`, for GRUB setups that eat the first word.
    assert_eq!(opts("placeholder noreboot"), opts("noreboot"));
    assert_eq!(opts("placeholder=whatever"), Options::default());
}

// ---------------------------------------------------------------------------------------------
// Booleans

#[test]
fn boolean_forms() {
    // (option text, expected value); the default is false for both options.
    let table: &[(&str, bool)] = &[
        ("noreboot", true),
        ("noreboot=", true),
        ("noreboot=1", true),
        ("noreboot=yes", true),
        ("noreboot=on", true),
        ("noreboot=true", true),
        ("noreboot=enable", true),
        ("noreboot=0", false),
        ("noreboot=no", false),
        ("noreboot=off", false),
        ("noreboot=false", false),
        ("noreboot=disable", false),
        ("no-noreboot", false),
        ("no_noreboot", false),
        // Xen inverts the prefix's sense rather than rejecting the stack.
        ("no-noreboot=0", true),
        ("no-noreboot=1", false),
        ("noreboot no-noreboot", false),
        ("no-noreboot noreboot", true),
        ("noreboot noreboot=off", false),
    ];
    for &(text, want) in table {
        assert_eq!(opts(text).noreboot, want, "{text}");
        let pin = text.replace("noreboot", "dom0_vcpus_pin");
        assert_eq!(opts(&pin).dom0_vcpus_pin, want, "{pin}");
    }
}

#[test]
fn bad_booleans_keep_the_previous_value() {
    for value in ["2", "maybe", "TRUE", "Yes", "y", "n", "onn", " "] {
        let line = format!("noreboot noreboot={value}");
        let (o, d) = parse(&line);
        assert!(o.noreboot, "{line}");
        if value == " " {
            // The space ends the option: `noreboot=` is true, and nothing follows.
            assert!(d.is_empty());
        } else {
            assert_eq!(messages(&line), [invalid("noreboot", value, -22)], "{line}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Sizes and dom0_mem

#[test]
fn size_suffixes_and_default_unit() {
    // (value, bytes): Xen's `parse_size_and_unit`, KiB without a suffix.
    let table: &[(&str, u64)] = &[
        ("512M", 512 * MIB),
        ("512m", 512 * MIB),
        ("1G", GIB),
        ("1g", GIB),
        ("2T", 2 * TIB),
        ("2t", 2 * TIB),
        ("1024K", MIB),
        ("1024k", MIB),
        ("1048576B", MIB),
        ("1048576b", MIB),
        ("524288", 512 * MIB),
        ("4", 4 * KIB),
        // Base auto-detection, as `simple_strtoull(s, &e, 0)`.
        ("0x200M", 512 * MIB),
        ("0X10G", 16 * GIB),
        ("010M", 8 * MIB),
        // Only whole 4 KiB pages count.
        ("4097B", 4096),
        ("6K", 4 * KIB),
    ];
    for &(value, bytes) in table {
        let o = opts(&format!("dom0_mem={value}"));
        assert_eq!(o.dom0_mem.amount, Some(size(bytes)), "{value}");
    }
}

#[test]
fn dom0_mem_forms() {
    let ms = |bytes, percent, minus| MemSize {
        bytes,
        percent,
        minus,
    };
    // (value, amount, min, max)
    type Row = (
        &'static str,
        Option<MemSize>,
        Option<MemSize>,
        Option<MemSize>,
    );
    let table: &[Row] = &[
        ("-1G", Some(ms(GIB, 0, true)), None, None),
        ("25%", Some(ms(0, 25, false)), None, None),
        ("0%", Some(ms(0, 0, false)), None, None),
        ("99%", Some(ms(0, 99, false)), None, None),
        ("1G+25%", Some(ms(GIB, 25, false)), None, None),
        ("-1G+10%", Some(ms(GIB, 10, true)), None, None),
        ("-5%", Some(ms(0, 5, true)), None, None),
        ("min:256M", None, Some(size(256 * MIB)), None),
        ("max:2G", None, None, Some(size(2 * GIB))),
        ("max:-1G", None, None, Some(ms(GIB, 0, true))),
        ("min:10%", None, Some(ms(0, 10, false)), None),
        (
            "min:256M,max:2G",
            None,
            Some(size(256 * MIB)),
            Some(size(2 * GIB)),
        ),
        ("512M,max:1G", Some(size(512 * MIB)), None, Some(size(GIB))),
        (
            "min:1G,max:4G,2G",
            Some(size(2 * GIB)),
            Some(size(GIB)),
            Some(size(4 * GIB)),
        ),
        // Within one value a later item replaces an earlier one of the same kind.
        ("1G,2G", Some(size(2 * GIB)), None, None),
    ];
    for &(value, amount, min, max) in table {
        let o = opts(&format!("dom0_mem={value}"));
        assert_eq!(o.dom0_mem, Dom0Mem { amount, min, max }, "{value}");
    }
}

#[test]
fn dom0_mem_rejects_malformed_values() {
    let table: &[(&str, i32)] = &[
        ("", -22),
        ("M", -22),
        ("512X", -22),
        ("512Mx", -22),
        ("512MB", -22),
        ("1.5G", -22),
        ("100%", -22),
        ("25%+1G", -22),
        ("1G+2G", -22),
        ("1G+", -22),
        ("1G+25%+1%", -22),
        ("512M,", -22),
        (",512M", -22),
        ("min:", -22),
        ("min:,max:1G", -22),
        ("MIN:1G", -22),
        ("mini:1G", -22),
        ("--1G", -22),
        ("+1G", -22),
        ("08M", -22),
        ("99999999999T", -75),
        ("18446744073709551616", -75),
        ("17179869184T", -75),
    ];
    for &(value, rc) in table {
        let line = format!("dom0_mem={value}");
        let (o, d) = parse(&line);
        assert_eq!(o.dom0_mem, Dom0Mem::default(), "{value}");
        assert_eq!(d.len(), 1, "{value}: {d:?}");
        assert_eq!(d[0].kind, DiagnosticKind::InvalidValue { rc }, "{value}");
        assert_eq!(d[0].to_string(), invalid("dom0_mem", value, rc));
    }
    // The largest amount that fits is fine.
    let o = opts("dom0_mem=16777215T");
    assert_eq!(o.dom0_mem.amount, Some(size(16_777_215 * TIB)));
}

#[test]
fn dom0_mem_repeats_accumulate_like_xen_statics() {
    // Last wins per field; other fields keep earlier values.
    let o = opts("dom0_mem=1G dom0_mem=2G");
    assert_eq!(o.dom0_mem.amount, Some(size(2 * GIB)));
    let o = opts("dom0_mem=min:1G dom0_mem=2G dom0_mem=max:3G");
    assert_eq!(
        o.dom0_mem,
        Dom0Mem {
            amount: Some(size(2 * GIB)),
            min: Some(size(GIB)),
            max: Some(size(3 * GIB)),
        }
    );
    // A bad value changes nothing, not even its valid leading items.
    let (o, d) = parse("dom0_mem=1G dom0_mem=min:2G,bogus");
    assert_eq!(o.dom0_mem.amount, Some(size(GIB)));
    assert_eq!(o.dom0_mem.min, None);
    assert_eq!(d.len(), 1);
}

#[test]
fn negated_custom_options_are_invalid() {
    // Xen passes "no" to the custom parser; these parsers reject it.
    assert_eq!(messages("no-dom0_mem"), [invalid("no-dom0_mem", "no", -22)]);
    assert_eq!(
        messages("no-dom0_max_vcpus"),
        [invalid("no-dom0_max_vcpus", "no", -22)]
    );
    assert_eq!(messages("no-loglvl"), [invalid("no-loglvl", "no", -22)]);
    // With a value the prefix is an error before the parser runs.
    assert_eq!(
        messages("no-dom0_mem=1G"),
        [invalid("no-dom0_mem", "1G", -22)]
    );
    assert_eq!(
        opts("dom0_mem=1G").dom0_mem,
        parse("dom0_mem=1G no-dom0_mem").0.dom0_mem
    );
}

#[test]
fn dom0_mem_resolve() {
    let eight = 8 * GIB;
    // (dom0_mem value or "" for none, host RAM, expected dom0 size)
    let table: &[(&str, u64, u64)] = &[
        // Default: all but min(1/16, 128 MiB).
        ("", eight, eight - 128 * MIB),
        ("", GIB, GIB - 64 * MIB),
        ("", 0, 0),
        ("512M", eight, 512 * MIB),
        ("-1G", eight, 7 * GIB),
        ("25%", eight, 2 * GIB),
        ("1G+25%", eight, 3 * GIB),
        ("-1G+25%", eight, 5 * GIB),
        // Never more than there is.
        ("16G", eight, eight),
        // "All but more than there is" wraps in Xen and ends up as everything.
        ("-16G", eight, eight),
        // Zero means default, as Xen's `get_memsize(...) ?: default_nr_pages(...)`.
        ("0", eight, eight - 128 * MIB),
        ("0%", eight, eight - 128 * MIB),
        ("1000B", eight, eight - 128 * MIB),
        // `-0` is "all but nothing".
        ("-0", eight, eight),
        // Bounds: min raises, max lowers, max beats min, avail beats both.
        ("512M,min:1G", eight, GIB),
        ("4G,max:2G", eight, 2 * GIB),
        ("min:4G,max:2G", eight, 2 * GIB),
        ("min:10G", eight, eight),
        ("max:-1G", eight, 7 * GIB),
        ("max:50%", eight, 4 * GIB),
        ("2G,min:25%", 16 * GIB, 4 * GIB),
    ];
    for &(value, ram, want) in table {
        let line = if value.is_empty() {
            String::new()
        } else {
            format!("dom0_mem={value}")
        };
        assert_eq!(
            opts(&line).dom0_mem.resolve(ram),
            want,
            "{value} on {ram:#x}"
        );
    }
    // Only whole pages of host RAM count.
    assert_eq!(opts("dom0_mem=-0").dom0_mem.resolve(GIB + 1000), GIB);
    // The balloon ceiling.
    assert_eq!(
        opts("dom0_mem=max:1G").dom0_mem.resolve_max(eight),
        Some(GIB)
    );
    assert_eq!(
        opts("dom0_mem=max:-1G").dom0_mem.resolve_max(eight),
        Some(7 * GIB)
    );
    assert_eq!(opts("dom0_mem=1G").dom0_mem.resolve_max(eight), None);
}

#[test]
fn dom0_mem_display() {
    let table: &[(&str, &str)] = &[
        ("", "default (all but min(1/16, 128 MiB))"),
        ("dom0_mem=0", "default (all but min(1/16, 128 MiB))"),
        ("dom0_mem=512M", "512 MiB"),
        ("dom0_mem=1G", "1024 MiB"),
        ("dom0_mem=6K", "4 KiB"),
        ("dom0_mem=-1G", "all but 1024 MiB"),
        ("dom0_mem=-0", "all but 0 MiB"),
        ("dom0_mem=25%", "25%"),
        ("dom0_mem=1G+25%", "1024 MiB + 25%"),
        ("dom0_mem=-1G+10%", "all but (1024 MiB + 10%)"),
        ("dom0_mem=min:256M,max:2G", "min 256 MiB, max 2048 MiB"),
        ("dom0_mem=512M,max:1G", "512 MiB, max 1024 MiB"),
        (
            "dom0_mem=min:1G,max:4G,2G",
            "2048 MiB, min 1024 MiB, max 4096 MiB",
        ),
    ];
    for &(line, want) in table {
        assert_eq!(opts(line).dom0_mem.to_string(), want, "{line}");
    }
}

// ---------------------------------------------------------------------------------------------
// dom0_max_vcpus

#[test]
fn dom0_max_vcpus_forms() {
    let r = |min, max| VcpuRange { min, max };
    let table: &[(&str, VcpuRange)] = &[
        ("4", r(4, 4)),
        ("2-8", r(2, 8)),
        ("4-4", r(4, 4)),
        ("4-", r(4, u32::MAX)),
        ("-8", r(1, 8)),
        ("0", r(1, 1)),
        ("0-8", r(1, 8)),
        // An empty value reads as 0, hence 1 vCPU, exactly as Xen's strtoul does.
        ("", r(1, 1)),
        ("0x10", r(16, 16)),
        ("010", r(8, 8)),
    ];
    for &(value, want) in table {
        let o = opts(&format!("dom0_max_vcpus={value}"));
        assert_eq!(o.dom0_max_vcpus, want, "{value}");
    }
    assert_eq!(opts("dom0_max_vcpus").dom0_max_vcpus, r(1, 1));
}

#[test]
fn dom0_max_vcpus_rejects_malformed_values() {
    let table: &[(&str, i32)] = &[
        ("4-2", -22),
        ("-0", -22),
        ("-", -22),
        ("4x", -22),
        ("4-x", -22),
        ("4-8-", -22),
        ("4--8", -22),
        ("a", -22),
        ("-a", -22),
        ("1,2", -22),
        ("99999999999", -75),
        ("1-4294967296", -75),
    ];
    for &(value, rc) in table {
        let line = format!("dom0_max_vcpus={value}");
        let (o, d) = parse(&line);
        assert_eq!(o.dom0_max_vcpus, VcpuRange::default(), "{value}");
        assert_eq!(
            d.iter().map(ToString::to_string).collect::<Vec<_>>(),
            [invalid("dom0_max_vcpus", value, rc)],
            "{value}"
        );
    }
}

#[test]
fn dom0_max_vcpus_repeats_keep_the_other_bound() {
    let o = opts("dom0_max_vcpus=-8 dom0_max_vcpus=2-");
    assert_eq!(o.dom0_max_vcpus, VcpuRange { min: 2, max: 8 });
    let o = opts("dom0_max_vcpus=2-8 dom0_max_vcpus=4");
    assert_eq!(o.dom0_max_vcpus, VcpuRange { min: 4, max: 4 });
    // The second would leave min > max, so it is rejected and the first stays.
    let (o, d) = parse("dom0_max_vcpus=-2 dom0_max_vcpus=4-");
    assert_eq!(o.dom0_max_vcpus, VcpuRange { min: 1, max: 2 });
    assert_eq!(d.len(), 1);
}

#[test]
fn dom0_max_vcpus_resolve() {
    // The table from Xen's documentation for `dom0_max_vcpus=4-8`.
    let r = opts("dom0_max_vcpus=4-8").dom0_max_vcpus;
    for (pcpus, want) in [(2, 4), (4, 4), (6, 6), (8, 8), (10, 8)] {
        assert_eq!(r.resolve(pcpus), want, "{pcpus} pCPUs");
    }
    let table: &[(&str, u32, u32)] = &[
        ("", 4, 4),
        ("", 0, 1),
        ("", 100_000, DOM0_MAX_VIRT_CPUS),
        ("dom0_max_vcpus=2", 16, 2),
        ("dom0_max_vcpus=16", 2, 16),
        ("dom0_max_vcpus=-4", 16, 4),
        ("dom0_max_vcpus=-4", 2, 2),
        ("dom0_max_vcpus=4-", 2, 4),
        ("dom0_max_vcpus=4-", 64, 64),
        ("dom0_max_vcpus=9000", 1, DOM0_MAX_VIRT_CPUS),
    ];
    for &(line, pcpus, want) in table {
        assert_eq!(
            opts(line).dom0_max_vcpus.resolve(pcpus),
            want,
            "{line}, {pcpus}"
        );
    }
}

#[test]
fn dom0_max_vcpus_display() {
    for (line, want) in [
        ("", "one per pCPU"),
        ("dom0_max_vcpus=4", "4"),
        ("dom0_max_vcpus=2-8", "2-8"),
        ("dom0_max_vcpus=4-", "4-"),
        ("dom0_max_vcpus=-8", "1-8"),
    ] {
        assert_eq!(opts(line).dom0_max_vcpus.to_string(), want, "{line}");
    }
}

// ---------------------------------------------------------------------------------------------
// loglvl / guest_loglvl

#[test]
fn loglvl_forms() {
    let l = |lower, upper| LogLevels { lower, upper };
    let table: &[(&str, LogLevels)] = &[
        ("none", l(0, 0)),
        ("error", l(1, 1)),
        ("warning", l(2, 2)),
        ("info", l(3, 3)),
        ("debug", l(4, 4)),
        ("all", l(4, 4)),
        ("error/info", l(1, 3)),
        ("none/warning", l(0, 2)),
        ("warning/all", l(2, 4)),
        // The rate-limited level is raised to at least the always-printed one.
        ("info/error", l(3, 3)),
        ("all/none", l(4, 4)),
        // An omitted level is Xen's fallback, `warning`.
        ("", l(2, 2)),
        ("/info", l(2, 3)),
        ("info/", l(3, 3)),
        ("none/", l(0, 2)),
    ];
    for &(value, want) in table {
        assert_eq!(
            opts(&format!("loglvl={value}")).loglvl,
            want,
            "loglvl={value}"
        );
        let g = opts(&format!("guest_loglvl={value}"));
        assert_eq!(g.guest_loglvl, want, "guest_loglvl={value}");
        assert_eq!(g.loglvl, LogLevels::XEN_DEFAULT, "guest_loglvl={value}");
    }
}

#[test]
fn loglvl_rejects_malformed_values() {
    for value in [
        "bogus",
        "Info",
        "infox",
        "info/bogus",
        "info/debug/all",
        "warn",
        "3",
    ] {
        let line = format!("loglvl=info loglvl={value}");
        let (o, d) = parse(&line);
        assert_eq!(o.loglvl, LogLevels { lower: 3, upper: 3 }, "{value}");
        assert_eq!(
            d.iter().map(ToString::to_string).collect::<Vec<_>>(),
            [invalid("loglvl", value, -22)]
        );
    }
}

#[test]
fn loglvl_decides_what_is_printed() {
    use LogLevel::*;
    let std = LogLevels::XEN_DEFAULT;
    assert!(std.prints(Error) && std.prints(Warning));
    assert!(!std.prints(Info) && !std.prints(Debug));
    assert_eq!(std.disposition(Info), Disposition::Never);

    let guest = LogLevels::GUEST_DEFAULT;
    assert!(!guest.prints(Error));
    assert_eq!(guest.disposition(Error), Disposition::RateLimited);
    assert_eq!(guest.disposition(Warning), Disposition::RateLimited);
    assert_eq!(guest.disposition(Info), Disposition::Never);

    let all = opts("loglvl=all").loglvl;
    assert!([Error, Warning, Info, Debug].iter().all(|l| all.prints(*l)));
    let none = opts("loglvl=none").loglvl;
    assert!(
        [Error, Warning, Info, Debug]
            .iter()
            .all(|l| !none.prints(*l))
    );

    let split = opts("loglvl=error/info").loglvl;
    assert_eq!(split.disposition(Error), Disposition::Always);
    assert_eq!(split.disposition(Warning), Disposition::RateLimited);
    assert_eq!(split.disposition(Info), Disposition::RateLimited);
    assert_eq!(split.disposition(Debug), Disposition::Never);
}

#[test]
fn loglvl_display() {
    assert_eq!(LogLevels::XEN_DEFAULT.to_string(), "warning/warning");
    assert_eq!(LogLevels::GUEST_DEFAULT.to_string(), "none/warning");
    assert_eq!(opts("loglvl=debug").loglvl.to_string(), "all/all");
    assert_eq!(opts("loglvl=error/info").loglvl.to_string(), "error/info");
}

// ---------------------------------------------------------------------------------------------
// console

#[test]
fn console_forms() {
    use ComPort::*;
    // (console value, vga, serial console, number of diagnostics)
    let table: &[(&str, bool, Option<ComPort>, usize)] = &[
        ("vga", true, None, 0),
        ("pc", true, None, 0),
        ("com1", false, Some(Com1), 0),
        ("com2", false, Some(Com2), 0),
        ("com1,vga", true, Some(Com1), 0),
        ("vga,com2", true, Some(Com2), 0),
        // One serial console handle: the last one wins.
        ("com1,com2", false, Some(Com2), 0),
        ("none", false, None, 0),
        // `none` adds nothing; it does not cancel.
        ("vga,none", true, None, 0),
        // Prefix matches, as Xen's `strncmp`.
        ("vgafoo", true, None, 0),
        ("com1xyz", false, Some(Com1), 0),
        ("nonesuch", false, None, 0),
        // Known to Xen, not to Xenolith.
        ("dbgp", false, None, 1),
        ("ehci,xhci,dtuart,pv,xen", false, None, 5),
        ("com1H", false, Some(Com1), 1),
        ("vga,com2L", true, Some(Com2), 1),
        // Unknown to Xen.
        ("foo", false, None, 1),
        ("", false, None, 1),
        ("vga,,com1", true, Some(Com1), 1),
        ("Com1", false, None, 1),
        ("dbgpx", false, None, 1),
        ("com3", false, None, 1),
    ];
    for &(value, vga, serial, ndiag) in table {
        let (o, d) = parse(&format!("console={value}"));
        assert_eq!(o.console, ConsoleSet { vga, serial }, "{value}");
        assert_eq!(d.len(), ndiag, "{value}: {d:?}");
    }
}

#[test]
fn console_diagnostics() {
    assert_eq!(messages("console=foo,vga"), ["Bad console= option 'foo'"]);
    assert_eq!(messages("console="), ["Bad console= option ''"]);
    assert_eq!(
        messages("console=dbgp"),
        ["console= option 'dbgp' is not supported by Xenolith, ignored"]
    );
    let d = parse("console=dbgp").1;
    assert_eq!(d[0].kind, DiagnosticKind::UnsupportedConsole);
    assert_eq!(d[0].value, "dbgp");
}

#[test]
fn console_repeats_last_wins() {
    let o = opts("console=com1 console=vga");
    assert_eq!(
        o.console,
        ConsoleSet {
            vga: true,
            serial: None
        }
    );
    // COM1 is neither the console nor configured any more.
    assert_eq!(o.com1, None);
    // `no-console` is a string option's empty value: no console at all (and a Xen warning).
    let (o, d) = parse("no-console");
    assert!(o.console.is_empty());
    assert_eq!(d.len(), 1);
}

#[test]
fn console_display() {
    for (line, want) in [
        ("", "vga"),
        ("console=com1", "com1"),
        ("console=vga,com2", "com2,vga"),
        ("console=none", "none"),
    ] {
        assert_eq!(opts(line).console.to_string(), want, "{line}");
    }
}

// ---------------------------------------------------------------------------------------------
// com1 / com2

fn com(baud: Baud, dps: (u8, Parity, u8), io_base: u64, irq: u32) -> SerialConfig {
    SerialConfig {
        baud,
        base_baud: DEFAULT_BASE_BAUD,
        data_bits: dps.0,
        parity: dps.1,
        stop_bits: dps.2,
        io_base,
        irq,
        reg_shift: 0,
        reg_width: 1,
    }
}

#[test]
fn serial_forms() {
    use Baud::*;
    use Parity::{Even, Mark, Odd, Space};
    let n81 = (8, Parity::None, 1);
    let table: &[(&str, SerialConfig)] = &[
        ("115200,8n1", com(Rate(115_200), n81, 0x3f8, 4)),
        ("9600", com(Rate(9600), n81, 0x3f8, 4)),
        ("1200", com(Rate(1200), n81, 0x3f8, 4)),
        ("auto", com(Auto, n81, 0x3f8, 4)),
        ("auto,8n1", com(Auto, n81, 0x3f8, 4)),
        ("38400,7e2", com(Rate(38400), (7, Even, 2), 0x3f8, 4)),
        ("19200,5o1", com(Rate(19200), (5, Odd, 1), 0x3f8, 4)),
        ("19200,6m2", com(Rate(19200), (6, Mark, 2), 0x3f8, 4)),
        ("19200,8s1", com(Rate(19200), (8, Space, 1), 0x3f8, 4)),
        // Xen's `parse_parity_char` maps unknown characters to "none".
        ("19200,8x1", com(Rate(19200), n81, 0x3f8, 4)),
        ("115200,,0x2e8", com(Rate(115_200), n81, 0x2e8, 4)),
        ("115200,8n1,,0", com(Rate(115_200), n81, 0x3f8, 0)),
        ("115200,8n1,1016,3", com(Rate(115_200), n81, 0x3f8, 3)),
        ("115200,8n1,0x3e8,5", com(Rate(115_200), n81, 0x3e8, 5)),
        // MMIO base (Xen treats >= 0x10000 as MMIO).
        (
            "115200,8n1,0xfedc9000,0",
            com(Rate(115_200), n81, 0xfedc_9000, 0),
        ),
        // Junk after a field is ignored, as in Xen.
        ("115200x", com(Rate(115_200), n81, 0x3f8, 4)),
        (
            "baud=57600,parity=e,data-bits=7,stop-bits=2,io-base=0x2f8,irq=3",
            com(Rate(57600), (7, Even, 2), 0x2f8, 3),
        ),
        ("baud=auto", com(Auto, n81, 0x3f8, 4)),
    ];
    for &(value, want) in table {
        let o = opts(&format!("com1={value}"));
        assert_eq!(o.com1, Some(want), "com1={value}");
        assert_eq!(o.com2, None, "com1={value}");
    }

    let o = opts("com2=115200/1500000,8n1");
    assert_eq!(o.com2.unwrap().base_baud, 1_500_000);
    assert_eq!(o.com2.unwrap().io_base, 0x2f8);
    assert_eq!(o.com2.unwrap().irq, 3);

    let o = opts("com1=115200,8n1,0xfe030000,0,reg-width=4,reg-shift=2");
    let c = o.com1.unwrap();
    assert_eq!(
        (c.io_base, c.irq, c.reg_width, c.reg_shift),
        (0xfe03_0000, 0, 4, 2)
    );
    let o = opts("com1=baud=115200,clock-hz=1500000");
    assert_eq!(o.com1.unwrap().base_baud, 1_500_000);
}

#[test]
fn serial_port_defaults_depend_on_console() {
    // A port named by `console=` is set up with the firmware's baud rate even without `comN=`.
    let o = opts("console=com1");
    assert_eq!(
        o.com1,
        Some(com(Baud::Auto, (8, Parity::None, 1), 0x3f8, 4))
    );
    let o = opts("console=vga,com2");
    assert_eq!(o.com1, None);
    assert_eq!(
        o.com2,
        Some(com(Baud::Auto, (8, Parity::None, 1), 0x2f8, 3))
    );
    // A console port's omitted baud is `auto`; another port has none and fails the check.
    assert_eq!(
        opts("console=com1 com1=,7e1").com1.unwrap().baud,
        Baud::Auto
    );
    assert_eq!(
        messages("com1=,7e1"),
        ["ERROR: Baud rate 0 outside supported range."]
    );
    // Configured but not a console.
    let o = opts("com1=115200,8n1");
    assert!(o.com1.is_some());
    assert_eq!(
        o.console,
        ConsoleSet {
            vga: true,
            serial: None
        }
    );
}

#[test]
fn serial_errors_leave_the_port_unconfigured() {
    let table: &[(&str, &str)] = &[
        ("50", "ERROR: Baud rate 50 outside supported range."),
        ("230400", "ERROR: Baud rate 230400 outside supported range."),
        ("115200,9n1", "ERROR: 9 data bits are unsupported."),
        ("115200,4n1", "ERROR: 4 data bits are unsupported."),
        ("115200,8n3", "ERROR: 3 stop bits are unsupported."),
        ("115200,8n", "ERROR: 0 stop bits are unsupported."),
        ("115200,81", "ERROR: bad DPS setting"),
        ("115200,", "ERROR: bad DPS setting"),
        ("115200,8n1,0", "ERROR: I/O base address must be specified."),
        ("115200,8n1,", "ERROR: I/O base address must be specified."),
        (
            "baud=9600,reg-width=2",
            "ERROR: Accepted values of reg_width are 1 and 4 only",
        ),
        ("foo=1", "ERROR: Invalid parameter: foo=1"),
        (
            "115200,8n1,0x3f8,4,bogus=1",
            "ERROR: Invalid parameter: bogus=1",
        ),
        (
            "115200,8n1,pci",
            "ERROR: com1: PCI UART discovery ('pci'/'amt') is not supported by Xenolith",
        ),
        (
            "115200,8n1,amt",
            "ERROR: com1: PCI UART discovery ('pci'/'amt') is not supported by Xenolith",
        ),
        (
            "115200,8n1,0x3f8,msi",
            "ERROR: com1: an MSI interrupt ('msi') is not supported by Xenolith",
        ),
        (
            "115200,8n1,0x3f8,4,0:1f.0",
            "ERROR: com1: a PCI port location is not supported by Xenolith",
        ),
        (
            "115200,8n1,0x3f8,4,,0:1c.0",
            "ERROR: com1: a PCI bridge location is not supported by Xenolith",
        ),
        (
            "dev=pci",
            "ERROR: com1: PCI UART selection is not supported by Xenolith",
        ),
        ("115200,8n1,0x3f8,-1", "ERROR: com1: negative IRQ"),
        ("99999999999999999999", "ERROR: com1: number out of range"),
    ];
    for &(value, want) in table {
        let line = format!("com1={value}");
        let (o, d) = parse(&line);
        assert_eq!(o.com1, None, "{line}");
        assert_eq!(d.len(), 1, "{line}: {d:?}");
        assert_eq!(d[0].to_string(), want, "{line}");
        assert_eq!(d[0].option, "com1");
        assert_eq!(d[0].value, value);
    }
}

#[test]
fn serial_error_on_console_port_also_loses_the_console() {
    // Xen cannot attach the console to an unregistered port: `serial_parse_handle` fails.
    let (o, d) = parse("console=com1,vga com1=9600,9n1");
    assert_eq!(o.com1, None);
    assert_eq!(
        o.console,
        ConsoleSet {
            vga: true,
            serial: None
        }
    );
    let msgs: Vec<String> = d.iter().map(ToString::to_string).collect();
    assert_eq!(
        msgs,
        [
            "ERROR: 9 data bits are unsupported.",
            "Bad console= option 'com1'"
        ]
    );
}

#[test]
fn serial_repeats_last_wins() {
    // Only the final string is interpreted, so an earlier bad one is never reported.
    let o = opts("com1=bogus=1 com1=9600");
    assert_eq!(o.com1.unwrap().baud, Baud::Rate(9600));
    let o = opts("com1=9600 com1=115200,7e1");
    assert_eq!(
        o.com1,
        Some(com(Baud::Rate(115_200), (7, Parity::Even, 1), 0x3f8, 4))
    );
    // `no-com1` sets the string option to empty: not configured again.
    assert_eq!(opts("com1=9600 no-com1").com1, None);
}

#[test]
fn serial_display_round_trips() {
    let table: &[(&str, &str)] = &[
        ("com1=115200,8n1", "115200,8n1,0x3f8,4"),
        ("com1=auto", "auto,8n1,0x3f8,4"),
        (
            "com1=38400/1500000,7e2,0x3e8,0",
            "38400/1500000,7e2,0x3e8,0",
        ),
        (
            "com1=115200,8n1,0xfe030000,0,reg-width=4,reg-shift=2",
            "115200,8n1,0xfe030000,0,reg-shift=2,reg-width=4",
        ),
    ];
    for &(line, want) in table {
        let cfg = opts(line).com1.unwrap();
        assert_eq!(cfg.to_string(), want, "{line}");
        assert_eq!(opts(&format!("com1={cfg}")).com1, Some(cfg), "{line}");
    }
}

// ---------------------------------------------------------------------------------------------
// sched

#[test]
fn sched_names() {
    let table: &[(&str, Sched)] = &[("credit", Sched::Credit), ("rr", Sched::RoundRobin)];
    for &(name, want) in table {
        let o = opts(&format!("sched={name}"));
        assert_eq!(o.sched, want);
        assert_eq!(o.sched.to_string(), name);
    }
    assert_eq!(Sched::Credit.name(), "SMP Credit Scheduler");
    assert_eq!(Sched::default(), Sched::Credit);
    // Repeats: only the final name is looked up.
    assert_eq!(opts("sched=bfs sched=rr").sched, Sched::RoundRobin);
    assert_eq!(opts("sched=rr sched=credit").sched, Sched::Credit);
}

#[test]
fn unknown_scheduler_falls_back_to_the_default() {
    // Xen's other schedulers are not built in: Xen's message for a missing one, then credit.
    for name in [
        "bfs", "", "Credit", "credit3", "sedf", "credit2", "null", "rtds", "arinc653", "RR",
    ] {
        let (o, d) = parse(&format!("sched=rr sched={name}"));
        assert_eq!(o.sched, Sched::DEFAULT, "{name}");
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].kind, DiagnosticKind::UnknownScheduler);
        assert_eq!(
            d[0].to_string(),
            format!("Could not find scheduler: {name}\nUsing 'SMP Credit Scheduler' (credit)")
        );
    }
}

// ---------------------------------------------------------------------------------------------
// conring_size

#[test]
fn conring_size_values() {
    let table: &[(&str, usize)] = &[
        ("64K", 65536),
        ("64k", 65536),
        ("64", 65536),
        ("1M", 1 << 20),
        ("16384B", 16384),
        ("0x400", 1 << 20),
        ("", 0),
        ("0", 0),
        ("4194303K", 4_294_966_272),
        // No digits reads as 0, as in Xen.
        ("k", 0),
    ];
    for &(value, want) in table {
        assert_eq!(
            opts(&format!("conring_size={value}")).conring_size,
            want,
            "{value}"
        );
    }
    // `no-` is ignored for size options: this is `conring_size=` (0).
    assert_eq!(opts("conring_size=1M no-conring_size").conring_size, 0);
}

#[test]
fn conring_size_rejects_bad_values() {
    let table: &[(&str, i32)] = &[
        ("64X", -22),
        ("64%", -22),
        ("1M2", -22),
        ("-1M", -22),
        // `opt_conring_size` is 32 bits wide.
        ("4G", -75),
        ("4194304K", -75),
        // A Xen gotcha: in hex, `B` is a digit, so this is 0x100000b KiB.
        ("0x100000B", -75),
        ("99999999999T", -75),
    ];
    for &(value, rc) in table {
        let line = format!("conring_size=64K conring_size={value}");
        let (o, d) = parse(&line);
        assert_eq!(o.conring_size, 65536, "{value}");
        assert_eq!(
            d.iter().map(ToString::to_string).collect::<Vec<_>>(),
            [invalid("conring_size", value, rc)]
        );
    }
}

#[test]
fn conring_effective_size() {
    // (command line, present CPUs, ring size)
    let table: &[(&str, u32, usize)] = &[
        // Unspecified: 2 KiB per CPU at the default loglvl, at least 16 KiB.
        ("", 1, 16 << 10),
        ("", 0, 16 << 10),
        ("", 8, 16 << 10),
        ("", 9, 32 << 10),
        ("", 64, 128 << 10),
        // A higher loglvl asks for more: 8 KiB per CPU at `all`.
        ("loglvl=all", 8, 64 << 10),
        ("loglvl=none", 64, 32 << 10),
        // Explicit: at least 16 KiB, power-of-two pages.
        ("conring_size=1", 64, 16 << 10),
        ("conring_size=16K", 64, 16 << 10),
        ("conring_size=64K", 1, 64 << 10),
        ("conring_size=100K", 1, 128 << 10),
        ("conring_size=1M", 1, 1 << 20),
        ("conring_size=12288B", 1, 16 << 10),
    ];
    for &(line, cpus, want) in table {
        assert_eq!(
            opts(line).effective_conring_size(cpus),
            want,
            "{line}, {cpus}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// selftest

#[test]
fn selftest_lists() {
    let table: &[(&str, &[&str])] = &[
        ("selftest=fault,conring", &["fault", "conring"]),
        ("selftest=one", &["one"]),
        ("selftest=svm,exit", &["svm", "exit"]),
        ("selftest=a,,b,", &["a", "b"]),
        ("selftest", &[]),
        ("selftest=", &[]),
        ("selftest=a selftest=b,c", &["b", "c"]),
        ("selftest=a no-selftest", &[]),
        ("selftest=Mixed-Case_words", &["Mixed-Case_words"]),
    ];
    for &(line, want) in table {
        assert_eq!(opts(line).selftest, want, "{line}");
    }
    assert_eq!(
        messages("no-selftest=a"),
        [invalid("no-selftest", "a", -22)]
    );
}

// ---------------------------------------------------------------------------------------------
// cmdline_cook and the ` -- ` split

#[test]
fn cook_cmdline_strips_the_image_name_like_xen() {
    let table: &[(&str, Option<&str>, &str)] = &[
        // QEMU's -kernel multiboot loader puts the path first.
        ("/path/xenolith console=com1", Some("qemu"), "console=com1"),
        ("/path/xenolith console=com1", None, "console=com1"),
        // GRUB Legacy does too.
        (
            "  /boot/xen.gz   noreboot",
            Some("GNU GRUB 0.97"),
            "noreboot",
        ),
        ("/boot/xen.gz noreboot", Some("GRUB 0.97"), "noreboot"),
        // So do PXELINUX (mboot.c32) and other loaders.
        ("/xen.gz dom0_mem=1G", Some("PXELINUX 6.03"), "dom0_mem=1G"),
        // GRUB 2 passes only the arguments.
        (
            "noreboot dom0_mem=1G",
            Some("GRUB 2.06"),
            "noreboot dom0_mem=1G",
        ),
        ("  noreboot", Some("GRUB 2.12"), "noreboot"),
        ("noreboot", Some("GNU GRUB 2.02~beta2"), "noreboot"),
        ("noreboot", Some("GRUB "), "noreboot"),
        // ... even if something else is there: Xen then reports it as unknown.
        (
            "/boot/xen.gz noreboot",
            Some("GRUB 2.06"),
            "/boot/xen.gz noreboot",
        ),
        // Degenerate lines.
        ("", None, ""),
        ("   ", None, ""),
        ("/boot/xen.gz", None, ""),
        ("/boot/xen.gz   ", None, ""),
        ("", Some("GRUB 2.06"), ""),
        // Only spaces count as whitespace, as in Xen.
        ("\t/xen a", None, "a"),
        ("/xen\ta b", None, "b"),
        // Everything after the image name is kept verbatim, including trailing spaces.
        ("/xen a  b ", None, "a  b "),
    ];
    for &(raw, loader, want) in table {
        assert_eq!(cook_cmdline(raw, loader), want, "{raw:?} from {loader:?}");
    }
}

#[test]
fn double_dash_splits_off_dom0_arguments() {
    // (cooked line, dom0_extra, diagnostics)
    let table: &[(&str, &str, usize)] = &[
        (
            "noreboot -- console=hvc0 root=/dev/sda",
            "console=hvc0 root=/dev/sda",
            0,
        ),
        ("noreboot --   quiet", "quiet", 0),
        ("noreboot -- ", "", 0),
        ("noreboot --  ", "", 0),
        ("a=1 -- b -- c", "b -- c", 1),
        // No leading space, no split: `--` is an (unknown) Xen option.
        ("-- quiet", "", 2),
        ("noreboot --", "", 1),
        ("noreboot --quiet", "", 1),
        ("noreboot quiet--", "", 1),
    ];
    for &(line, extra, ndiag) in table {
        let (o, d) = parse(line);
        assert!(o.noreboot || !line.contains("noreboot"), "{line}");
        assert_eq!(o.dom0_extra, extra, "{line}");
        assert_eq!(d.len(), ndiag, "{line}: {d:?}");
    }
    // Options after the separator belong to dom0 and are not parsed.
    let o = opts("console=com1 -- console=vga dom0_mem=bogus");
    assert_eq!(o.console.serial, Some(ComPort::Com1));
    assert!(!o.console.vga);
    assert_eq!(o.dom0_mem, Dom0Mem::default());
    assert_eq!(o.dom0_extra, "console=vga dom0_mem=bogus");
}

#[test]
fn cook_then_split_matches_xen_order() {
    let raw = "/boot/xenolith dom0_mem=512M -- quiet";
    let o = opts(cook_cmdline(raw, Some("qemu")));
    assert_eq!(o.dom0_mem.amount, Some(size(512 * MIB)));
    assert_eq!(o.dom0_extra, "quiet");
    // Xen cooks first, so with nothing but the image name before it the separator loses its
    // leading space and is no longer one.
    let cooked = cook_cmdline("/boot/xen.gz -- quiet", None);
    assert_eq!(cooked, "-- quiet");
    assert_eq!(
        messages(cooked),
        ["parameter \"--\" unknown!", "parameter \"quiet\" unknown!"]
    );
}

// ---------------------------------------------------------------------------------------------
// Everything together

#[test]
fn realistic_command_line() {
    let raw = "/boot/xenolith.elf dom0_mem=2G,max:4G dom0_max_vcpus=2-4 dom0_vcpus_pin \
               console=com1,vga com1=115200,8n1 loglvl=all guest_loglvl=all noreboot \
               sched=credit conring_size=1M selftest=fault,conring iommu=off \
               -- earlyprintk=xen console=hvc0";
    let (o, d) = parse(cook_cmdline(raw, Some("qemu")));
    assert_eq!(
        d.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["parameter \"iommu\" unknown!"]
    );
    let want = Options {
        dom0_mem: Dom0Mem {
            amount: Some(size(2 * GIB)),
            min: None,
            max: Some(size(4 * GIB)),
        },
        dom0_max_vcpus: VcpuRange { min: 2, max: 4 },
        dom0_vcpus_pin: true,
        dom0_pvh: false,
        console: ConsoleSet {
            vga: true,
            serial: Some(ComPort::Com1),
        },
        com1: Some(com(Baud::Rate(115_200), (8, Parity::None, 1), 0x3f8, 4)),
        com2: None,
        loglvl: LogLevels { lower: 4, upper: 4 },
        guest_loglvl: LogLevels { lower: 4, upper: 4 },
        noreboot: true,
        sched: Sched::Credit,
        conring_size: 1 << 20,
        gnttab: Gnttab::XEN_DEFAULT,
        selftest: vec!["fault".to_string(), "conring".to_string()],
        dom0_extra: "earlyprintk=xen console=hvc0".to_string(),
    };
    assert_eq!(o, want);
    assert_eq!(o.dom0_mem.resolve(16 * GIB), 2 * GIB);
    assert_eq!(o.dom0_max_vcpus.resolve(8), 4);
    assert_eq!(o.dom0_mem.to_string(), "2048 MiB, max 4096 MiB");
    assert_eq!(o.com1.unwrap().to_string(), "115200,8n1,0x3f8,4");
}

#[test]
fn diagnostics_come_in_xen_boot_order() {
    // Option errors while parsing, then the UARTs, the console and the scheduler.
    let line = "sched=bogus console=foo com2=50 zap dom0_mem=x";
    assert_eq!(
        messages(line),
        [
            "parameter \"zap\" unknown!".to_string(),
            invalid("dom0_mem", "x", -22),
            "ERROR: Baud rate 50 outside supported range.".to_string(),
            "Bad console= option 'foo'".to_string(),
            "Could not find scheduler: bogus\nUsing 'SMP Credit Scheduler' (credit)".to_string(),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Number parsing internals

#[test]
fn strtoull_matches_xen() {
    use super::num::{Overflow, strtoull};
    // (input, base, value, rest)
    let table: &[(&str, u32, u64, &str)] = &[
        ("", 0, 0, ""),
        ("123abc", 10, 123, "abc"),
        ("0", 0, 0, ""),
        ("0x1F", 0, 31, ""),
        ("0X1f", 0, 31, ""),
        // `0x` without a hex digit after it is octal 0 followed by junk.
        ("0x", 0, 0, "x"),
        ("0xg", 0, 0, "xg"),
        ("017", 0, 15, ""),
        ("08", 0, 0, "8"),
        ("0x10", 16, 16, ""),
        ("ff", 16, 255, ""),
        ("ff", 10, 0, "ff"),
        ("-1", 0, 0, "-1"),
        (" 1", 0, 0, " 1"),
        ("18446744073709551615", 0, u64::MAX, ""),
    ];
    for &(s, base, value, rest) in table {
        assert_eq!(strtoull(s, base), Ok((value, rest)), "{s:?} base {base}");
    }
    assert_eq!(strtoull("18446744073709551616", 0), Err(Overflow));
    assert_eq!(strtoull("0x10000000000000000", 0), Err(Overflow));
}

#[test]
fn parse_size_and_unit_matches_xen() {
    use super::num::{Overflow, parse_size_and_unit};
    let table: &[(&str, u64, &str)] = &[
        ("1", KIB, ""),
        ("1B", 1, ""),
        ("1K", KIB, ""),
        ("1M", MIB, ""),
        ("1G", GIB, ""),
        ("1T", TIB, ""),
        // `%` is left for the caller, unscaled.
        ("25%", 25, "%"),
        // Unknown suffixes scale by KiB and stay unconsumed.
        ("2X", 2 * KIB, "X"),
        ("1MB", MIB, "B"),
        ("", 0, ""),
    ];
    for &(s, value, rest) in table {
        assert_eq!(parse_size_and_unit(s), Ok((value, rest)), "{s:?}");
    }
    assert_eq!(parse_size_and_unit("16777216T"), Err(Overflow));
    assert_eq!(parse_size_and_unit("18014398509481984"), Err(Overflow));
    assert_eq!(
        parse_size_and_unit("18014398509481983"),
        Ok((u64::MAX - 1023, ""))
    );
}

// ---------------------------------------------------------------------------------------------
// Grant tables (common/grant_table.c)

#[test]
fn gnttab_frame_limits_are_c_integers() {
    let o = opts("gnttab_max_frames=32 gnttab_max_maptrack_frames=0x100");
    assert_eq!(o.gnttab.max_frames, 32);
    assert_eq!(o.gnttab.max_maptrack_frames, 256);
    // Octal, as simple_strtoll with base 0.
    assert_eq!(opts("gnttab_max_frames=010").gnttab.max_frames, 8);
    // The xl.cfg names are aliases; the last setting wins.
    let o = opts("max_grant_frames=16 max-maptrack-frames=8 gnttab_max_frames=20");
    assert_eq!(o.gnttab.max_frames, 20);
    assert_eq!(o.gnttab.max_maptrack_frames, 8);
    // No value is 0 (simple_strtoll of ""), and `no-` means nothing to integer options.
    assert_eq!(opts("gnttab_max_frames").gnttab.max_frames, 0);
    assert_eq!(opts("no-gnttab_max_frames=5").gnttab.max_frames, 5);
    // A negative value in int range wraps, as the C assignment does.
    assert_eq!(opts("gnttab_max_frames=-1").gnttab.max_frames, u32::MAX);
}

#[test]
fn gnttab_frame_limits_reject_garbage_and_overflow() {
    let (o, _) = parse("gnttab_max_frames=32x gnttab_max_maptrack_frames=0x100000000");
    assert_eq!(o.gnttab, Gnttab::XEN_DEFAULT);
    assert_eq!(
        messages("gnttab_max_frames=32x gnttab_max_maptrack_frames=0x100000000"),
        [
            invalid("gnttab_max_frames", "32x", -22),
            invalid("gnttab_max_maptrack_frames", "0x100000000", -75),
        ]
    );
    assert_eq!(
        messages("max_grant_frames=-2147483649"),
        [invalid("max_grant_frames", "-2147483649", -75)]
    );
}

#[test]
fn gnttab_list() {
    let o = opts("gnttab=max-ver:1,no-transitive,transfer=off");
    assert_eq!(o.gnttab.max_version, 1);
    assert!(!o.gnttab.transitive);
    assert!(!o.gnttab.transfer);
    let o = opts("gnttab=max_ver:1 gnttab=max-ver:2,transitive=yes,transfer");
    assert_eq!(o.gnttab, Gnttab::XEN_DEFAULT);
}

#[test]
fn gnttab_bad_items_are_reported_and_the_good_ones_applied() {
    let (o, d) = parse("gnttab=max-ver:3,no-transfer");
    assert!(!o.gnttab.transfer);
    assert_eq!(o.gnttab.max_version, 2);
    assert_eq!(
        d.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [invalid("gnttab", "max-ver:3,no-transfer", -22)]
    );
    for bad in [
        "gnttab=max-ver:",
        "gnttab=max-ver:1x",
        "gnttab=transitive=maybe",
        "gnttab=no-transitive=1",
        "gnttab=transitiveness",
        "gnttab=",
        "no-gnttab",
    ] {
        let (o, d) = parse(bad);
        assert_eq!(o.gnttab, Gnttab::XEN_DEFAULT, "{bad}");
        assert_eq!(d.len(), 1, "{bad}: {d:?}");
        assert_eq!(d[0].kind, DiagnosticKind::InvalidValue { rc: -22 }, "{bad}");
    }
}

#[test]
fn dom0_selects_pv_or_pvh_like_xen() {
    assert!(!opts("").dom0_pvh);
    assert!(opts("dom0=pvh").dom0_pvh);
    assert!(opts("dom0=pvh,verbose,no-shadow").dom0_pvh);
    assert!(!opts("dom0=pvh dom0=pv").dom0_pvh);
    assert!(opts("dom0=cpuid-faulting=0,pvh").dom0_pvh);
    // An unknown item invalidates the option, but Xen still applies the items it knows.
    assert!(parse("dom0=pvh,bogus").0.dom0_pvh);
    assert_eq!(
        messages("dom0=pvh,bogus"),
        [invalid("dom0", "pvh,bogus", -22)]
    );
    assert_eq!(messages("dom0=pv=1").len(), 1);
    // Accepted (there is no IOMMU to configure), but still checked.
    assert!(messages("dom0-iommu=none dom0_iommu=strict,no-passthrough").is_empty());
    assert_eq!(
        messages("dom0-iommu=bogus"),
        [invalid("dom0-iommu", "bogus", -22)]
    );
}
