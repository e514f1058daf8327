//! `altair-client`: plays a beer tap against an Altair server.
//!
//! The tap client is built in its own issue; until then this binary only says so.

fn main() {
    eprintln!("altair-client: not built yet; see the project's issue tracker");
    std::process::exit(2);
}
