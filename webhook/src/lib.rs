//! ferry-webhook (in progress).
