//! The `--format` values as clap sees them. The output layer has its own
//! [`Format`], which knows nothing of clap; these mirror
//! it for the command line and convert into it.

use clap::ValueEnum;

use crate::report::output::Format;

/// How a received datagram is printed (`--format` of send, listen, echo, multicast join
/// and relay).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// The payload bytes exactly, nothing added (netcat compatible; the default into a
    /// pipe or a file)
    Raw,
    /// One line per datagram, control characters and invalid UTF-8 escaped (the default
    /// on a terminal: datagrams never run together or drive the terminal)
    Text,
    /// The payload and a newline
    Line,
    /// One line of lower-case hex per datagram
    Hex,
    /// A header with peer and length, then offset / hex / ASCII rows
    Hexdump,
    /// One line of base64 per datagram
    Base64,
    /// One JSON object per line: time, peer, len, truncated, base64, text...
    Json,
    /// Decoded as a DNS message, as dig shows one (a datagram that does not decode is
    /// shown as `;; not a DNS message: REASON` and a hexdump)
    Dns,
}

impl From<FormatArg> for Format {
    fn from(arg: FormatArg) -> Format {
        match arg {
            FormatArg::Raw => Format::Raw,
            FormatArg::Text => Format::Text,
            FormatArg::Line => Format::Line,
            FormatArg::Hex => Format::Hex,
            FormatArg::Hexdump => Format::Hexdump,
            FormatArg::Base64 => Format::Base64,
            FormatArg::Json => Format::Json,
            FormatArg::Dns => Format::Dns,
        }
    }
}

/// `doctor --format`: its report is lines of text or JSON objects, nothing else.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum DoctorFormat {
    /// One line a check: `ok|warn|fail  CHECK: DETAIL`
    #[default]
    Text,
    /// One JSON object a check
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_format_arg_becomes_the_output_format_of_its_name() {
        for arg in FormatArg::value_variants() {
            let name = arg.to_possible_value().unwrap().get_name().to_string();
            let format = Format::from(*arg);
            assert_eq!(format!("{format:?}").to_lowercase(), name);
        }
    }
}
