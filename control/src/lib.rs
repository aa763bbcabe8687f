//! ferry-control owns Ferry's control plane.
#![warn(missing_docs)]
