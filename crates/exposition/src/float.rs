//! Go-compatible float formatting: moved to [`gocompat::float`]; re-exported at its old path.

pub use gocompat::float::{go_float, write_go_float, write_text_float};
