//! The program around the subcommands: the one-line error report and its exit code,
//! clap's errors folded onto one line, and logging on stderr (SPEC §6, §7).

use std::io::Write;
use std::process::ExitCode;

use clap::CommandFactory;

use crate::cli::Cli;

pub mod exit;
pub mod logging;
pub mod signals;

/// Print the error once, as one line, and pick its exit code.
pub fn report(err: &anyhow::Error) -> ExitCode {
    if let Some(line) = error_line(err) {
        let _ = std::io::stderr().write_all(line.as_bytes());
    }
    ExitCode::from(exit::code_for(err))
}

/// The one line `report` prints for `err` (newline included), or `None` for an error
/// that ends quietly.
pub fn error_line(err: &anyhow::Error) -> Option<String> {
    if exit::is_quiet(err) {
        return None;
    }
    let line = abbreviate(&format!("{err:#}").replace('\n', " "));
    Some(format!("dgram: {line}\n"))
}

/// `--help` and `--version` print to stdout and exit 0; any other parse error becomes one
/// line on stderr, exit 2: `dgram: invalid value 'abc' for '--count <N>': ... (see 'dgram send --help')`.
pub fn clap_error(err: &clap::Error) -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    match usage_line(err, &args) {
        Some(line) => {
            let _ = std::io::stderr().write_all(line.as_bytes());
            ExitCode::from(exit::USAGE)
        }
        None => {
            let _ = err.print();
            ExitCode::from(exit::SUCCESS)
        }
    }
}

/// The one line (newline included) `clap_error` prints for a parse error of the command
/// line `args` (program name first); `None` for `--help` and `--version`, which are not
/// errors.
pub fn usage_line(err: &clap::Error, args: &[std::ffi::OsString]) -> Option<String> {
    use clap::error::ErrorKind;
    if matches!(
        err.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    ) {
        return None;
    }
    let rendered = if err.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        let names: Vec<String> = Cli::command()
            .get_subcommands()
            .map(|c| c.get_name().to_string())
            .collect();
        format!("a subcommand is required: {}", names.join(", "))
    } else {
        err.render().to_string()
    };
    let subcommand = subcommand_in(args);
    let hint = netcat_hint(err, &subcommand).or_else(|| dash_message_hint(err, args));
    let line = abbreviate(&fold_clap_message(&rendered, &subcommand, hint));
    Some(format!("dgram: {line}\n"))
}

/// What a netcat habit means here (SPEC §6): the flag nc users type, and what dgram
/// does instead. `None` for any other error.
fn netcat_hint(err: &clap::Error, subcommand: &str) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if err.kind() != ErrorKind::UnknownArgument {
        return None;
    }
    let Some(ContextValue::String(arg)) = err.get(ContextKind::InvalidArg) else {
        return None;
    };
    let hint = match arg.as_str() {
        "-u" => "dgram is always UDP: drop -u".to_string(),
        "-l" if subcommand == "listen" => "dgram listen needs no -l: drop it".to_string(),
        "-l" => "to listen, use dgram listen [ADDR]".to_string(),
        "-k" => "dgram's servers keep running until a limit or a signal: drop -k".to_string(),
        "-z" => "to find which ports answer, use dgram scan HOST PORTS".to_string(),
        "-p" if subcommand == "listen" || subcommand == "echo" => {
            "the port is the address: dgram listen PORT".to_string()
        }
        "-p" => {
            "to send from a port, use --bind PORT (or dgram listen PORT to receive)".to_string()
        }
        _ => return None,
    };
    Some(hint)
}

/// A send whose MESSAGE starts with `-` (`dgram send HOST -xyz`): clap reads it as
/// options; the hint is the same line with `--` before the message.
fn dash_message_hint(err: &clap::Error, args: &[std::ffi::OsString]) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let words: Vec<&str> = args.iter().map(|a| a.to_str().unwrap_or("?")).collect();
    let send = words.iter().position(|w| *w == "send")?;
    // The word clap read as options: `-xyz` (unknown `-y`), or `-wow` (`-w` with `ow`).
    let found = |w: &str| match (err.kind(), err.get(ContextKind::InvalidArg)) {
        (ErrorKind::UnknownArgument, Some(ContextValue::String(bad))) if !bad.starts_with("--") => {
            w.contains(bad.trim_start_matches('-'))
        }
        (ErrorKind::InvalidValue | ErrorKind::ValueValidation, _) => matches!(
            err.get(ContextKind::InvalidValue),
            Some(ContextValue::String(v)) if w.get(2..) == Some(v.as_str())
        ),
        _ => false,
    };
    let at = words
        .iter()
        .enumerate()
        .skip(send + 2)
        .find(|(_, w)| w.starts_with('-') && !w.starts_with("--") && w.len() > 2 && found(w))?
        .0;
    let mut fixed = words.clone();
    fixed.insert(at, "--");
    fixed[0] = "dgram";
    Some(format!(
        "a MESSAGE that starts with '-' goes after --: {}",
        fixed.join(" ")
    ))
}

/// clap's message folded onto one line: its first paragraph, its tips (`did you mean
/// '--count'?`, `use '-- -x'`), a netcat `hint` when there is one, and a pointer to
/// --help.
fn fold_clap_message(rendered: &str, subcommand: &str, hint: Option<String>) -> String {
    let first = rendered.split("\n\n").next().unwrap_or(rendered);
    let mut line = first
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if let Some(rest) = line.strip_prefix("error: ") {
        line = rest.to_string();
    }
    // A hint of ours says it better than clap's generic "to pass '-u' as a value".
    let has_hint = hint.is_some();
    let tips = rendered
        .lines()
        .filter_map(|l| l.trim().strip_prefix("tip: "))
        .filter(|tip| !has_hint || !tip.starts_with("to pass "))
        .map(|tip| match tip.rsplit_once("exists: ") {
            // "a similar argument exists: '--count'", "... subcommand ...", "... value ..."
            Some((_, name)) if tip.starts_with("a similar") => format!("did you mean {name}?"),
            _ => tip.to_string(),
        });
    for extra in tips.chain(hint) {
        line.push_str(": ");
        line.push_str(&extra);
    }
    let help = if subcommand.is_empty() {
        "dgram --help".to_string()
    } else {
        format!("dgram {subcommand} --help")
    };
    format!("{line} (see '{help}')")
}

/// Words longer than any real value: a path is at most PATH_MAX (4,096 bytes on Linux),
/// so an error names every file by its whole path (SPEC §6) and only a word past that
/// (a 100 KiB argument quoted back) is shortened.
const LONGEST_WORD: usize = 4096;

/// Shorten words longer than [`LONGEST_WORD`]: the error line stays readable and still
/// says what the word was like and how long.
fn abbreviate(line: &str) -> String {
    line.split(' ')
        .map(|word| {
            if word.len() <= LONGEST_WORD {
                return word.to_string();
            }
            let cut = (0..=40)
                .rev()
                .find(|&i| word.is_char_boundary(i))
                .unwrap_or(0);
            format!("{}...({} bytes)", &word[..cut], word.len())
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The subcommand named on the command line `args`, if any, for the `--help` pointer.
fn subcommand_in(args: &[std::ffi::OsString]) -> String {
    let command = Cli::command();
    let names: Vec<String> = command
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    args.iter()
        .skip(1)
        .filter_map(|a| a.to_str())
        .find(|a| names.iter().any(|n| n == a))
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn long_words_are_abbreviated() {
        let long = "a".repeat(5000);
        let line = abbreviate(&format!("invalid address '{long}': missing port"));
        assert!(line.len() < 120, "{line}");
        assert!(
            line.contains("(5003 bytes)") && line.ends_with("missing port"),
            "{line}"
        );
        assert_eq!(abbreviate("short words stay"), "short words stay");
        // A path is never shortened: PATH_MAX is 4,096 bytes.
        let path = format!("/{}", "d/".repeat(2047));
        assert_eq!(abbreviate(&path), path);
        let wide = "é".repeat(2100);
        assert!(abbreviate(&wide).contains("bytes)"));
    }

    #[test]
    fn clap_errors_fold_to_one_line() {
        let err = Cli::try_parse_from(["dgram", "send", "127.0.0.1:9", "x", "--count", "abc"])
            .unwrap_err();
        let line = fold_clap_message(&err.render().to_string(), "send", None);
        assert!(
            line.starts_with("invalid value 'abc' for '--count <N>': invalid digit"),
            "{line}"
        );
        assert!(line.ends_with("(see 'dgram send --help')"), "{line}");
        assert!(!line.contains('\n'));

        let err = Cli::try_parse_from(["dgram", "send"]).unwrap_err();
        let line = fold_clap_message(&err.render().to_string(), "send", None);
        assert!(
            line.contains("required") && line.contains("<TARGET>"),
            "{line}"
        );
    }

    fn argv(words: &[&str]) -> Vec<std::ffi::OsString> {
        words.iter().map(std::ffi::OsString::from).collect()
    }

    #[test]
    fn the_usage_line_points_at_the_help_of_the_subcommand_named() {
        let line_of = |words: &[&str]| {
            let args = argv(words);
            let err = Cli::parse_from_args(args.clone()).unwrap_err();
            usage_line(&err, &args)
        };
        let line = line_of(&["dgram", "listen", "0", "--frobnicate"]).unwrap();
        assert!(
            line.starts_with("dgram: unexpected argument '--frobnicate'"),
            "{line}"
        );
        assert!(line.ends_with("(see 'dgram listen --help')\n"), "{line}");
        assert_eq!(line.lines().count(), 1);
        // The subcommand is found wherever it is on the line.
        let line = line_of(&["dgram", "-Z", "send"]).unwrap();
        assert!(
            line.ends_with("(see 'dgram send --help')\n")
                || line.ends_with("(see 'dgram --help')\n"),
            "{line}"
        );
        let line = line_of(&["dgram", "nosuchcommand"]).unwrap();
        assert!(line.ends_with("(see 'dgram --help')\n"), "{line}");
        // Help and version are not errors: no line.
        assert_eq!(line_of(&["dgram", "--help"]), None);
        assert_eq!(line_of(&["dgram", "send", "--version"]), None);
    }

    #[test]
    fn an_error_is_one_line_unless_it_ends_quietly() {
        let err = anyhow::anyhow!("first\nsecond").context("outer");
        assert_eq!(
            error_line(&err).as_deref(),
            Some("dgram: outer: first second\n")
        );
    }
}
