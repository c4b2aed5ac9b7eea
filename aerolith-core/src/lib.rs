//! Aerolith core (work in progress).
#![warn(missing_docs)]
pub mod clock;
pub use clock::{Clock, ManualClock, SystemClock};
