//! The verdict protocol: one line per check and a summary per suite.
//!
//! ```text
//! VERDICT <suite>.<check> PASS|FAIL|SKIP <details>
//! SUMMARY <suite> passed=<n> failed=<n> skipped=<n>
//! ```
//!
//! Details must be deterministic (the host compares them between hypervisors): values both
//! hypervisors must agree on, never addresses, frame numbers or timings.

use core::fmt;

use xen_abi::errno::Errno;

use crate::console::println;

/// The outcome of one check.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail,
    Skip,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "PASS",
            Outcome::Fail => "FAIL",
            Outcome::Skip => "SKIP",
        }
    }
}

/// Totals over suites.
#[derive(Default, Clone, Copy)]
pub struct Totals {
    pub suites: u32,
    pub passed: u32,
    pub failed: u32,
    pub skipped: u32,
}

/// A suite in progress: prints verdicts and counts them.
pub struct Suite {
    name: &'static str,
    passed: u32,
    failed: u32,
    skipped: u32,
}

impl Suite {
    /// Starts suite `name`.
    pub fn new(name: &'static str) -> Self {
        Suite {
            name,
            passed: 0,
            failed: 0,
            skipped: 0,
        }
    }

    /// Records and prints one verdict.
    pub fn verdict(&mut self, check: &str, outcome: Outcome, details: fmt::Arguments) {
        match outcome {
            Outcome::Pass => self.passed += 1,
            Outcome::Fail => self.failed += 1,
            Outcome::Skip => self.skipped += 1,
        }
        println!(
            "VERDICT {}.{} {} {}",
            self.name,
            check,
            outcome.as_str(),
            details
        );
    }

    /// PASS if `ok`, else FAIL, with `details` either way.
    pub fn check(&mut self, check: &str, ok: bool, details: fmt::Arguments) {
        let outcome = if ok { Outcome::Pass } else { Outcome::Fail };
        self.verdict(check, outcome, details);
    }

    /// PASS if `got == want`. Details: `<what>=<got>`, plus ` expected=<want>` on failure.
    pub fn expect_eq<T: PartialEq + fmt::Display>(
        &mut self,
        check: &str,
        what: &str,
        got: T,
        want: T,
    ) {
        if got == want {
            self.verdict(check, Outcome::Pass, format_args!("{what}={got}"));
        } else {
            self.verdict(
                check,
                Outcome::Fail,
                format_args!("{what}={got} expected={want}"),
            );
        }
    }

    /// A hypercall return value check: `expect_eq(check, "rc", Rc(got), Rc(want))`.
    pub fn expect_rc(&mut self, check: &str, got: i64, want: i64) {
        self.expect_eq(check, "rc", Rc(got), Rc(want));
    }

    /// SKIP with a reason.
    pub fn skip(&mut self, check: &str, why: fmt::Arguments) {
        self.verdict(check, Outcome::Skip, why);
    }

    /// Prints the SUMMARY line and adds the counts to `totals`.
    pub fn finish(self, totals: &mut Totals) {
        println!(
            "SUMMARY {} passed={} failed={} skipped={}",
            self.name, self.passed, self.failed, self.skipped
        );
        totals.suites += 1;
        totals.passed += self.passed;
        totals.failed += self.failed;
        totals.skipped += self.skipped;
    }
}

/// A hypercall return value: `0`, `1`, ... or `-38(ENOSYS)`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Rc(pub i64);

impl Rc {
    /// The return value for `-errno`.
    pub const fn err(e: Errno) -> i64 {
        e.to_ret()
    }
}

impl fmt::Display for Rc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 < 0 && self.0 > -4096 {
            write!(f, "{}({})", self.0, Errno(-self.0 as i32).name())
        } else {
            write!(f, "{}", self.0)
        }
    }
}

/// A value printed in hex (`0x…`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Hex(pub u64);

impl fmt::Display for Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}
