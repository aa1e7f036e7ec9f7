//! `dgram doctor`: what this host's UDP can do (SPEC §4 doctor). A recipe over
//! [`crate::doctor`]: run the checks, print one line each, exit 1 when one failed.

use crate::base::error::{Ending, Unmet};
use crate::cli::DoctorArgs;
use crate::doctor::{self, Status};
use crate::report::output::{Format, Output};

/// A TARGET must be HOST:PORT before any check runs (exit 2); whether the name resolves
/// is one of the checks.
pub fn check(args: &DoctorArgs) -> anyhow::Result<()> {
    if let Some(target) = &args.target {
        crate::net::addr::split(target, None)?;
    }
    Ok(())
}

/// Run `dgram doctor`.
pub fn run(args: DoctorArgs) -> anyhow::Result<Ending> {
    check(&args)?;
    let json = args.format == Some(crate::cli::format::DoctorFormat::Json);
    let checks = doctor::run(args.target.as_deref(), args.probe);
    let mut out = Output::stdout(Format::Raw)?;
    out.write_all(doctor::render(&checks, json).as_bytes())?;
    out.flush()?;
    let failed: Vec<&str> = checks
        .iter()
        .filter(|c| c.status == Status::Fail)
        .map(|c| c.check)
        .collect();
    if failed.is_empty() {
        Ok(Ending::Done)
    } else {
        Err(Unmet(format!(
            "{} check(s) failed: {}",
            failed.len(),
            failed.join(", ")
        ))
        .into())
    }
}
