//! Nothing here: the crate exists for `tests/ui.rs`, the compile-fail cases
//! of pebble's compile-time promises (see that file).
