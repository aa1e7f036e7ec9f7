//! `dgram multicast join` and `multicast send` arguments.

use clap::Args;

use super::common::{FamilyOpts, ReceiveOpts, SocketOpts};
use super::send::SendArgs;

#[derive(Debug, Args)]
pub struct JoinArgs {
    /// Groups to join: GROUP:PORT, [GROUP%IFACE]:PORT; all on one port (0: a free one)
    #[arg(value_name = "GROUP:PORT", required = true)]
    pub groups: Vec<String>,
    /// Interface to join on: NAME, ADDRESS or INDEX (default: the kernel's choice, the
    /// interface of the route to the group)
    #[arg(long, value_name = "IFACE")]
    pub iface: Option<String>,
    /// Join source-specific: receive the groups from this sender only (SSM)
    #[arg(long, value_name = "ADDR")]
    pub source: Option<std::net::IpAddr>,
    /// Explain at start what could keep datagrams away (also printed when --timeout ends
    /// a run that received nothing)
    #[arg(long)]
    pub diagnose: bool,
    #[command(flatten)]
    pub family: FamilyOpts,
    #[command(flatten)]
    pub receive: ReceiveOpts,
    #[command(flatten)]
    pub socket: SocketOpts,
}

#[derive(Debug, Args)]
pub struct MulticastSendArgs {
    #[command(flatten)]
    pub send: SendArgs,
    /// Interface to send on: NAME, ADDRESS or INDEX (default: the kernel's choice)
    #[arg(long, value_name = "IFACE")]
    pub iface: Option<String>,
    /// Do not loop our datagrams back to joiners on this host
    #[arg(long)]
    pub no_loop: bool,
}
