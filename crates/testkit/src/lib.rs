//! The workspace's shared test kit (`publish = false`, used only as a dev-dependency).
//!
//! It owns what several crates' tests and benches would otherwise each carry a copy of:
//!
//! * [`store`]: the `Store` builder, pushes from text or protobuf bodies, and the store's view
//!   rendered as scrape text (the `Store`-boundary tests in `crates/store/tests`).
//! * [`gateway`]: the binary-spawning harness: the real `pushgateway` binary on a free
//!   loopback port with flags, readiness, push/scrape/delete helpers, log capture, kill on drop.
//! * [`server`] (feature `server`): the `server::Config` builder and the in-process server
//!   harness (`server::serve` on a loopback port of the test process).
//! * [`certs`] (feature `tls`): test certificates made with rcgen, and clients that trust them.
//! * [`bench`]: the timing harness and bodies of every `cargo bench` target, and `fill`.
//!
//! It knows nothing of any one test: the assertions stay in the tests.

#![forbid(unsafe_code)]

pub mod bench;
#[cfg(feature = "tls")]
pub mod certs;
pub mod gateway;
#[cfg(feature = "server")]
pub mod server;
pub mod store;
