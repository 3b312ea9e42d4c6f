//! The top-level flow: IDT, hypercall page, dom0 or domU ([`crate::role`]), the suites the
//! command line selects, `PVHTEST DONE`, power off. The panic handler prints `PVHTEST PANIC ...`
//! and crashes the domain.

use crate::cmdline::Selection;
use crate::console::{CStr, println};
use crate::hypercall::{crash, find_xen_leaves, install, poweroff};
use crate::start_info::Boot;
use crate::suites::{Env, SUITES, Scope};
use crate::verdict::{Suite, Totals};

/// Entered from the trampoline in 64-bit mode with `hvm_start_info`'s physical address.
pub extern "C" fn pvhtest_main(start_info: u64) -> ! {
    crate::idt::install();
    let Some(leaves) = find_xen_leaves() else {
        println!("PVHTEST FATAL no Xen CPUID leaves");
        crash()
    };
    install(leaves);
    let boot = Boot { paddr: start_info };
    crate::role::detect(boot.info().flags);
    println!("PVHTEST start xenolith-pvhtest");
    println!("PVHTEST cmdline: {}", CStr(boot.cmdline()));
    // Known only now: the line above may have found CONSOLEIO_write refused.
    let domu = crate::role::is_domu();
    if domu {
        println!("PVHTEST role domU (output on port 0xe9)");
    }

    let env = Env { boot, leaves, domu };
    let selection = Selection::parse(env.boot.cmdline());
    let mut totals = Totals::default();
    for (name, scope, run) in SUITES {
        // `all` (or no `suites=`) runs what fits this role; a named suite always runs.
        let named = selection.names().contains(&name.as_bytes());
        let in_all = match scope {
            Scope::All => true,
            Scope::DomU => domu,
            Scope::Named => false,
        };
        if selection.wants(name) && (named || in_all) {
            let mut suite = Suite::new(name);
            run(&mut suite, &env);
            suite.finish(&mut totals);
        }
    }
    for &name in selection.names() {
        if !SUITES.iter().any(|(known, _, _)| known.as_bytes() == name) {
            println!("PVHTEST unknown suite {}", CStr(name));
            totals.failed += 1;
        }
    }
    println!(
        "PVHTEST DONE suites={} passed={} failed={} skipped={}",
        totals.suites, totals.passed, totals.failed, totals.skipped
    );
    poweroff()
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    println!("PVHTEST PANIC {info}");
    crash()
}
