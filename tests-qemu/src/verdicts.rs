//! The test guests' verdict protocol, parsed from a serial log, and the comparison of two runs
//! (real Xen as the reference, Xenolith as the candidate).
//!
//! A guest prints, one line each (see `tests-qemu/guests/README.md`):
//!
//! ```text
//! VERDICT <suite>.<check> PASS|FAIL|SKIP <details>
//! SUMMARY <suite> passed=<n> failed=<n> skipped=<n>
//! PVTEST DONE suites=<n> passed=<n> failed=<n> skipped=<n>
//! ```
//!
//! Whatever precedes `VERDICT`/`SUMMARY`/`PVTEST` on a line is ignored: a hypervisor may prefix
//! guest output (`(d0) `, `(XEN) `) or glue it to its own. Lines starting `PVTEST FATAL`,
//! `PVTEST PANIC` or `PVTEST unknown suite` are problems of the run.

use std::collections::BTreeMap;
use std::fmt;

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// The hypervisor behaved as Xen 4.17 does.
    Pass,
    /// It did not.
    Fail,
    /// The check could not run (a precondition failed).
    Skip,
}

impl Outcome {
    /// Parses `PASS`, `FAIL` or `SKIP`.
    pub fn parse(s: &str) -> Option<Outcome> {
        match s {
            "PASS" => Some(Outcome::Pass),
            "FAIL" => Some(Outcome::Fail),
            "SKIP" => Some(Outcome::Skip),
            _ => None,
        }
    }

    /// The protocol's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "PASS",
            Outcome::Fail => "FAIL",
            Outcome::Skip => "SKIP",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `VERDICT` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The suite (before the first `.` of the check name).
    pub suite: String,
    /// The check within the suite (may contain further dots).
    pub check: String,
    /// PASS, FAIL or SKIP.
    pub outcome: Outcome,
    /// The rest of the line (trimmed), deterministic by contract.
    pub details: String,
}

impl Verdict {
    /// `<suite>.<check>`.
    pub fn key(&self) -> String {
        format!("{}.{}", self.suite, self.check)
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{} {}", self.suite, self.check, self.outcome)?;
        if !self.details.is_empty() {
            write!(f, " {}", self.details)?;
        }
        Ok(())
    }
}

/// One `SUMMARY` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// `passed=`.
    pub passed: u32,
    /// `failed=`.
    pub failed: u32,
    /// `skipped=`.
    pub skipped: u32,
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "passed={} failed={} skipped={}",
            self.passed, self.failed, self.skipped
        )
    }
}

/// Everything the verdict protocol says about one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transcript {
    /// The verdicts in the order printed.
    pub verdicts: Vec<Verdict>,
    /// `SUMMARY` lines by suite, in the order printed.
    pub summaries: Vec<(String, Counts)>,
    /// The `PVTEST DONE` line's counts, if it appeared.
    pub done: Option<Counts>,
    /// Protocol violations and guest-reported errors (malformed lines, `PVTEST FATAL`, ...).
    pub problems: Vec<String>,
}

/// Parses `key=<u32>` out of space-separated words.
fn count(words: &[&str], key: &str) -> Option<u32> {
    words
        .iter()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}

fn parse_counts(rest: &str) -> Option<Counts> {
    let words: Vec<&str> = rest.split_whitespace().collect();
    Some(Counts {
        passed: count(&words, "passed")?,
        failed: count(&words, "failed")?,
        skipped: count(&words, "skipped")?,
    })
}

impl Transcript {
    /// The transcript of domain `dom` in a serial log where several domains print: dom0's
    /// lines are the ones without a `(dN) ` or `(XEN) ` prefix, domain N's carry `(dN) `.
    pub fn of_domain(serial: &str, dom: u16) -> Transcript {
        let prefix = format!("(d{dom}) ");
        let text: String = serial
            .lines()
            .filter_map(|l| {
                let l = l.trim_end_matches('\r');
                if dom == 0 {
                    (!l.starts_with("(d") && !l.starts_with("(XEN)")).then_some(l)
                } else {
                    l.strip_prefix(prefix.as_str())
                }
            })
            .map(|l| format!("{l}\n"))
            .collect();
        Transcript::parse(&text)
    }

    /// Parses the protocol lines out of a serial log's text.
    pub fn parse(text: &str) -> Transcript {
        let mut t = Transcript::default();
        for line in text.lines() {
            let line = line.trim_end();
            if let Some(p) = line.find("VERDICT ") {
                t.parse_verdict(&line[p + "VERDICT ".len()..], line);
            } else if let Some(p) = line.find("SUMMARY ") {
                let rest = &line[p + "SUMMARY ".len()..];
                let (suite, counts) = rest.split_once(' ').unwrap_or((rest, ""));
                match parse_counts(counts) {
                    Some(c) => t.summaries.push((suite.to_string(), c)),
                    None => t.problems.push(format!("malformed SUMMARY line: {line:?}")),
                }
            } else if let Some(p) = line.find("PVTEST ") {
                let rest = &line[p + "PVTEST ".len()..];
                if let Some(counts) = rest.strip_prefix("DONE ") {
                    match parse_counts(counts) {
                        Some(c) => t.done = Some(c),
                        None => t.problems.push(format!("malformed DONE line: {line:?}")),
                    }
                } else if ["FATAL", "PANIC", "unknown suite"]
                    .iter()
                    .any(|k| rest.starts_with(k))
                {
                    t.problems.push(format!("guest reported: {}", &line[p..]));
                }
            }
        }
        t
    }

    fn parse_verdict(&mut self, rest: &str, line: &str) {
        let mut parts = rest.splitn(3, ' ');
        let key = parts.next().unwrap_or("");
        let outcome = parts.next().and_then(Outcome::parse);
        let details = parts.next().unwrap_or("").trim().to_string();
        match (key.split_once('.'), outcome) {
            (Some((suite, check)), Some(outcome)) if !suite.is_empty() && !check.is_empty() => {
                if self
                    .verdicts
                    .iter()
                    .any(|v| v.suite == suite && v.check == check)
                {
                    self.problems.push(format!("duplicate check {key}"));
                }
                self.verdicts.push(Verdict {
                    suite: suite.to_string(),
                    check: check.to_string(),
                    outcome,
                    details,
                });
            }
            _ => self
                .problems
                .push(format!("malformed VERDICT line: {line:?}")),
        }
    }

    /// The verdicts of `suite`.
    pub fn suite<'a>(&'a self, suite: &'a str) -> impl Iterator<Item = &'a Verdict> + 'a {
        self.verdicts.iter().filter(move |v| v.suite == suite)
    }

    /// The verdict for `<suite>.<check>`.
    pub fn get(&self, key: &str) -> Option<&Verdict> {
        self.verdicts.iter().find(|v| v.key() == key)
    }

    /// The SUMMARY counts of `suite`.
    pub fn summary(&self, suite: &str) -> Option<Counts> {
        self.summaries
            .iter()
            .find(|(s, _)| s == suite)
            .map(|(_, c)| *c)
    }

    /// The suites that printed verdicts or a summary, in order of first appearance.
    pub fn suites(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        let names = self
            .verdicts
            .iter()
            .map(|v| v.suite.as_str())
            .chain(self.summaries.iter().map(|(s, _)| s.as_str()));
        for s in names {
            if !out.contains(&s) {
                out.push(s);
            }
        }
        out
    }

    /// The counts the verdicts of `suite` add up to.
    pub fn counted(&self, suite: &str) -> Counts {
        let mut c = Counts::default();
        for v in self.suite(suite) {
            match v.outcome {
                Outcome::Pass => c.passed += 1,
                Outcome::Fail => c.failed += 1,
                Outcome::Skip => c.skipped += 1,
            }
        }
        c
    }

    /// Everything wrong with the transcript as a protocol stream: the parse problems, suites
    /// without a SUMMARY (the run stopped early) or whose SUMMARY disagrees with their verdicts
    /// (lost or garbled lines), and a missing or inconsistent `PVTEST DONE`.
    pub fn consistency_problems(&self) -> Vec<String> {
        let mut out = self.problems.clone();
        let mut total = Counts::default();
        for suite in self.suites() {
            let counted = self.counted(suite);
            total.passed += counted.passed;
            total.failed += counted.failed;
            total.skipped += counted.skipped;
            match self.summary(suite) {
                None => out.push(format!("suite {suite}: no SUMMARY line")),
                Some(s) if s != counted => out.push(format!(
                    "suite {suite}: SUMMARY says {s} but the VERDICT lines give {counted}"
                )),
                Some(_) => {}
            }
        }
        match self.done {
            None => out.push("no PVTEST DONE line".to_string()),
            Some(d) if d != total => out.push(format!(
                "PVTEST DONE says {d} but the VERDICT lines give {total}"
            )),
            Some(_) => {}
        }
        out
    }

    /// Checks that the transcript is consistent, that every suite in `suites` ran, and that
    /// every verdict of those suites is PASS; the error lists what is wrong.
    pub fn expect_all_pass(&self, suites: &[&str]) -> Result<(), String> {
        let mut errors = self.consistency_problems();
        for &suite in suites {
            if self.suite(suite).next().is_none() {
                errors.push(format!("suite {suite}: no verdicts"));
            }
            for v in self.suite(suite).filter(|v| v.outcome != Outcome::Pass) {
                errors.push(format!("not PASS: {v}"));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("\n"))
        }
    }
}

impl fmt::Display for Transcript {
    /// The transcript as the protocol lines (without prefixes).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for v in &self.verdicts {
            writeln!(f, "VERDICT {v}")?;
        }
        for (suite, c) in &self.summaries {
            writeln!(f, "SUMMARY {suite} {c}")?;
        }
        if let Some(d) = self.done {
            writeln!(f, "PVTEST DONE {d}")?;
        }
        for p in &self.problems {
            writeln!(f, "problem: {p}")?;
        }
        Ok(())
    }
}

/// One difference between a reference and a candidate run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// The reference has this check; the candidate does not.
    Missing(Verdict),
    /// The candidate has a check the reference does not.
    Extra(Verdict),
    /// Both have the check, with a different outcome or details.
    Changed {
        /// The reference's verdict.
        reference: Verdict,
        /// The candidate's verdict.
        candidate: Verdict,
    },
    /// A protocol problem of the candidate run (see [`Transcript::consistency_problems`]).
    CandidateProblem(String),
    /// A protocol problem of the reference run.
    ReferenceProblem(String),
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Difference::Missing(r) => write!(f, "- {r}\n+ (missing)"),
            Difference::Extra(c) => write!(f, "- (not in the reference)\n+ {c}"),
            Difference::Changed {
                reference,
                candidate,
            } => write!(f, "- {reference}\n+ {candidate}"),
            Difference::CandidateProblem(p) => write!(f, "candidate run: {p}"),
            Difference::ReferenceProblem(p) => write!(f, "reference run: {p}"),
        }
    }
}

/// The result of [`compare`]: empty when the runs agree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Comparison {
    /// Checks compared (present in both runs).
    pub compared: usize,
    /// The differences, reference order first, then checks only the candidate has.
    pub differences: Vec<Difference>,
}

impl Comparison {
    /// Whether the two runs printed the same checks with the same outcomes and details, and
    /// both transcripts were complete.
    pub fn identical(&self) -> bool {
        self.differences.is_empty()
    }
}

impl fmt::Display for Comparison {
    /// A unified-diff-like listing: `-` lines are the reference (Xen), `+` the candidate.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.identical() {
            return write!(f, "identical verdicts ({} checks)", self.compared);
        }
        writeln!(
            f,
            "{} difference(s) over {} common checks (- reference, + candidate):",
            self.differences.len(),
            self.compared
        )?;
        for d in &self.differences {
            writeln!(f, "{d}")?;
        }
        Ok(())
    }
}

/// Compares a candidate run against the reference: the same set of checks, each with the same
/// outcome and details; protocol problems of either run count as differences too.
pub fn compare(reference: &Transcript, candidate: &Transcript) -> Comparison {
    let mut cmp = Comparison::default();
    cmp.differences.extend(
        reference
            .consistency_problems()
            .into_iter()
            .map(Difference::ReferenceProblem),
    );
    cmp.differences.extend(
        candidate
            .consistency_problems()
            .into_iter()
            .map(Difference::CandidateProblem),
    );
    let by_key: BTreeMap<String, &Verdict> =
        candidate.verdicts.iter().map(|v| (v.key(), v)).collect();
    for r in &reference.verdicts {
        match by_key.get(&r.key()) {
            None => cmp.differences.push(Difference::Missing(r.clone())),
            Some(&c) => {
                cmp.compared += 1;
                if c.outcome != r.outcome || c.details != r.details {
                    cmp.differences.push(Difference::Changed {
                        reference: r.clone(),
                        candidate: c.clone(),
                    });
                }
            }
        }
    }
    for c in &candidate.verdicts {
        if reference.get(&c.key()).is_none() {
            cmp.differences.push(Difference::Extra(c.clone()));
        }
    }
    cmp
}

#[cfg(test)]
mod tests {
    use super::*;

    const XEN: &str = "\
(XEN) Freed 656kB init memory
PVTEST start xenolith-pvtest
VERDICT basic.start_info.magic PASS magic=xen-3.0-x86_64p
VERDICT basic.hypercall.unknown_60 PASS rc=-38(ENOSYS)
VERDICT basic.mmu_update.pt_frame_writable PASS rc=-16(EBUSY) done=0
SUMMARY basic passed=3 failed=0 skipped=0
PVTEST DONE suites=1 passed=3 failed=0 skipped=0
(XEN) Hardware Dom0 halted: halting machine
";

    #[test]
    fn parses_verdicts_summaries_and_done() {
        let t = Transcript::parse(XEN);
        assert_eq!(t.verdicts.len(), 3);
        assert_eq!(
            t.verdicts[0],
            Verdict {
                suite: "basic".into(),
                check: "start_info.magic".into(),
                outcome: Outcome::Pass,
                details: "magic=xen-3.0-x86_64p".into(),
            }
        );
        assert_eq!(
            t.get("basic.mmu_update.pt_frame_writable")
                .map(|v| v.details.as_str()),
            Some("rc=-16(EBUSY) done=0")
        );
        assert_eq!(
            t.summary("basic"),
            Some(Counts {
                passed: 3,
                failed: 0,
                skipped: 0
            })
        );
        assert_eq!(t.suites(), vec!["basic"]);
        assert!(t.consistency_problems().is_empty(), "{t}");
        assert_eq!(t.expect_all_pass(&["basic"]), Ok(()));
        assert!(t.expect_all_pass(&["other"]).is_err());
    }

    #[test]
    fn prefixes_are_stripped() {
        let t = Transcript::parse(
            "(d0) VERDICT s.a PASS x=1\n(XEN) xyz VERDICT s.b SKIP\nVERDICT s.c FAIL  y \n",
        );
        let got: Vec<String> = t.verdicts.iter().map(|v| v.to_string()).collect();
        assert_eq!(got, ["s.a PASS x=1", "s.b SKIP", "s.c FAIL y"]);
    }

    #[test]
    fn protocol_problems_are_reported() {
        let t = Transcript::parse(
            "VERDICT nodot PASS\nVERDICT s.a MAYBE\nVERDICT s.b PASS\nVERDICT s.b PASS\n\
             SUMMARY s passed=1 failed=0 skipped=0\nSUMMARY q passed=x\n\
             PVTEST FATAL trap vector=14\nPVTEST unknown suite zz\n",
        );
        let problems = t.consistency_problems().join("\n");
        for needle in [
            "malformed VERDICT line: \"VERDICT nodot PASS\"",
            "malformed VERDICT line: \"VERDICT s.a MAYBE\"",
            "duplicate check s.b",
            "malformed SUMMARY",
            "guest reported: PVTEST FATAL trap vector=14",
            "guest reported: PVTEST unknown suite zz",
            "suite s: SUMMARY says passed=1 failed=0 skipped=0 but the VERDICT lines give \
             passed=2 failed=0 skipped=0",
            "no PVTEST DONE line",
        ] {
            assert!(problems.contains(needle), "{needle:?} not in\n{problems}");
        }
        let t = Transcript::parse("VERDICT s.a FAIL\n");
        assert!(
            t.consistency_problems()
                .contains(&"suite s: no SUMMARY line".to_string())
        );
        assert!(
            t.expect_all_pass(&["s"])
                .unwrap_err()
                .contains("not PASS: s.a FAIL")
        );
    }

    #[test]
    fn identical_runs_compare_equal() {
        let a = Transcript::parse(XEN);
        let b = Transcript::parse(&XEN.replace("VERDICT", "(d0) VERDICT"));
        let cmp = compare(&a, &b);
        assert!(cmp.identical(), "{cmp}");
        assert_eq!(cmp.compared, 3);
        assert_eq!(cmp.to_string(), "identical verdicts (3 checks)");
    }

    #[test]
    fn differences_are_listed() {
        let reference = Transcript::parse(XEN);
        let candidate = Transcript::parse(
            "VERDICT basic.start_info.magic PASS magic=xen-3.0-x86_64\n\
             VERDICT basic.mmu_update.pt_frame_writable FAIL rc=-22(EINVAL) done=0\n\
             VERDICT basic.extra PASS\n\
             SUMMARY basic passed=2 failed=1 skipped=0\n\
             PVTEST DONE suites=1 passed=2 failed=1 skipped=0\n",
        );
        let cmp = compare(&reference, &candidate);
        assert!(!cmp.identical());
        assert_eq!(cmp.compared, 2);
        assert_eq!(cmp.differences.len(), 4, "{cmp}");
        let text = cmp.to_string();
        for needle in [
            "- basic.start_info.magic PASS magic=xen-3.0-x86_64p\n\
             + basic.start_info.magic PASS magic=xen-3.0-x86_64\n",
            "- basic.hypercall.unknown_60 PASS rc=-38(ENOSYS)\n+ (missing)\n",
            "- basic.mmu_update.pt_frame_writable PASS rc=-16(EBUSY) done=0\n\
             + basic.mmu_update.pt_frame_writable FAIL rc=-22(EINVAL) done=0\n",
            "- (not in the reference)\n+ basic.extra PASS\n",
        ] {
            assert!(text.contains(needle), "{needle:?} not in\n{text}");
        }
        // An incomplete candidate run is a difference even if its verdicts match.
        let truncated = Transcript::parse(&XEN[..XEN.find("SUMMARY").unwrap()]);
        let cmp = compare(&reference, &truncated);
        assert!(
            cmp.differences.contains(&Difference::CandidateProblem(
                "suite basic: no SUMMARY line".into()
            )),
            "{cmp}"
        );
    }
}
